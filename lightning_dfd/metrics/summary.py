"""``DetectionScores``: one Metric that collects frame scores and reports every detection metric at the
frame and video level, overall and per manipulation / attack type. It is what the shared
``DetectorModule`` logs; all states are ``"cat"`` states, so DDP ranks agree after ``compute``. Its settings
are one :class:`~lightning_dfd.metrics.scoring.Scoring` object (the same one the method holds).

Two scores per frame: the fake probability ``preds`` (thresholded metrics: accuracy, APCER/BPCER/ACER, votes)
and the log-odds ``log_odds`` (ranking metrics: AUC, AP, EER, TPR@FPR, pAUC, tAUC, log(wP)), float64 log-odds
rather than a probability because a float32 probability is exactly 1.0 for every logit above ~16.6 (float64
above ~36.7), which ties confident scores and collapses TPR at low FPR; the log-odds is a strictly increasing
function of the probability, so ranking metrics equal those of exact probabilities.

Keys of ``compute()`` (``level`` in ``frame``, ``video``):

- ``{level}/auc``, ``ap``, ``eer``, ``acc`` (accuracy at the threshold = DLDFD's TCR), ``pauc@0.1`` (McClish,
  ``max_fpr``), ``tauc@0.01`` ... (one per ``tauc_fars``, reading ``tauc_reading``), ``apcer``, ``bpcer``,
  ``acer`` (APCER = worst group, ISO/IEC 30107-3), ``log_wp@recall=0.5`` ... (one per ``log_wp_recalls``, DFDC
  preview, none by default);
- TPR@FPR, one per ``fpr_points``, named by the positive class of ``Scoring.tpr_positive``:
  ``{level}/tpr@fpr=1e-4`` = fakes / attacks caught with at most 1e-4 of the reals flagged (``fake``, the
  deepfake convention, TAR@FAR of seed 004), or ``{level}/tpr_bona_fide@fpr=1e-4`` = bona fide accepted with
  at most 1e-4 of the attacks accepted (``bona_fide``, the CASIA-SURF challenge, seed 001). A rate below
  ``1 / n_negatives`` is NaN with a warning; ``{level}/n_negatives`` is the number of negatives of that
  convention (reals, or attacks), so a reader sees which rates the data can measure;
- per group ``g`` that has fake samples: ``{level}/auc/{g}``, ``{level}/ap/{g}``, ``{level}/acc/{g}``, computed
  on all reals plus the fakes of ``g`` (the FF++ per-manipulation protocol), and ``{level}/apcer/{g}``,
  ``{level}/acer/{g}`` (per attack type, ISO/IEC 30107-3; ``g`` = ``attack_4`` ... for CASIA-SURF): the APCER of
  that species and ``(APCER_g + BPCER) / 2``; the BPCER of every group is the level's ``bpcer`` (same reals).
  Groups are the integer ids returned by ``register_group(name)``; names registered on any rank are gathered at
  ``compute``, and a group id nobody registered is named by its number.

Video level: probabilities are aggregated with ``aggregate_by_video(how=aggregation, threshold=threshold)``
and log-odds with ``aggregate_log_odds_by_video`` (log-odds of the mean probability for ``"mean"``); the video
decision threshold is 0.5 for ``"vote"`` (majority vote of the frame decisions) and ``threshold`` otherwise. A
video's group is the largest group id among its frames (one group per video is expected). Undefined values
(one class present, no samples, NaN scores: NaN in, NaN out) are NaN with one ``UserWarning`` per level.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from lightning_dfd.metrics.aggregation import (
    aggregate_by_video,
    aggregate_log_odds_by_video,
    segment_max,
    video_index,
)
from lightning_dfd.metrics.anti_spoofing import NO_ATTACK_TYPE, _anti_spoofing_errors_compute
from lightning_dfd.metrics.base import ScoreTargetMetric, compute_dtype, format_scores
from lightning_dfd.metrics.eer import _equal_error_rate_compute
from lightning_dfd.metrics.log_weighted_precision import DFDC_ALPHA, _log_weighted_precision_compute
from lightning_dfd.metrics.operating_point import _threshold_accuracy_compute, _tpr_at_fpr_compute
from lightning_dfd.metrics.partial_auc import _partial_auc_compute
from lightning_dfd.metrics.ranking import _average_precision_compute, _roc_auc_compute
from lightning_dfd.metrics.scoring import Scoring
from lightning_dfd.metrics.truncated_auc import _truncated_auc_compute

LEVELS: tuple[str, ...] = ("frame", "video")


def rate_key(rate: float) -> str:
    """Short scientific form used in metric keys: 0.01 -> ``1e-2``, 0.0005 -> ``5e-4``."""
    mantissa, exponent = f"{float(rate):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def group_index(name: str) -> int:
    """Stable int id of a group name (manipulation or attack type), equal on every rank and process."""
    return video_index(f"group:{name}")


class DetectionScores(ScoreTargetMetric):
    """Collector of frame scores reporting frame- and video-level detection metrics (see module docstring).

    Args:
        scoring: the evaluation settings (aggregation, threshold, FPR points, TPR@FPR positive class, pAUC /
            tAUC cut-offs, log(wP) recalls); ``Scoring()`` defaults when omitted.
        validate_args: check that the targets hold only 0 and 1.
    """

    higher_is_better = None
    metric_name = "DetectionScores"

    def __init__(self, scoring: Scoring | None = None, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        if scoring is not None and not isinstance(scoring, Scoring):
            raise TypeError(f"DetectionScores: scoring must be a lightning_dfd.metrics.Scoring, got "
                            f"{type(scoring).__name__}; e.g. DetectionScores(Scoring(aggregation='vote')).")
        self.scoring = scoring if scoring is not None else Scoring()
        self.add_cat_state("log_odds", torch.float64)
        self.add_cat_state("video_idx", torch.int64)
        self.add_cat_state("group_idx", torch.int64)
        self.group_names: dict[int, str] = {}
        self.last_scores: dict[str, np.ndarray] = {}

    @property
    def video_threshold(self) -> float:
        """Decision threshold on video scores: 0.5 for majority vote, else the frame threshold."""
        return 0.5 if self.scoring.aggregation == "vote" else self.scoring.threshold

    def register_group(self, name: str) -> int:
        """Stable integer id of a group (manipulation or attack type) name; the name is remembered."""
        group_id = group_index(name)
        self.group_names[group_id] = name
        return group_id

    def update(self, preds: Tensor, target: Tensor, video_idx: Tensor, group_idx: Tensor | None = None,
               log_odds: Tensor | None = None) -> None:
        """Append a batch of frames.

        Args:
            preds: fake probabilities (thresholded metrics, votes), shape ``(B,)``.
            target: labels 0/1, shape ``(B,)``.
            video_idx: integer video id per frame (``lightning_dfd.metrics.video_indices``).
            group_idx: optional integer group id per frame (``register_group``).
            log_odds: order-preserving ranking scores (the logits), shape ``(B,)``; when omitted they are the
                float64 log-odds of ``preds``, which tie wherever the probabilities tie.
        """
        preds, target = format_scores(preds, target, self.metric_name, self.validate_args)
        if video_idx.numel() != target.numel() or torch.is_floating_point(video_idx):
            raise ValueError(f"DetectionScores: video_idx must hold one integer per frame ({target.numel()}), got "
                             f"{video_idx.numel()} values of dtype {video_idx.dtype}; build it with "
                             "lightning_dfd.metrics.video_indices(batch[VIDEO_ID]).")
        if group_idx is None:
            group_idx = torch.full_like(target, NO_ATTACK_TYPE)
        elif group_idx.numel() != target.numel() or torch.is_floating_point(group_idx):
            raise ValueError(f"DetectionScores: group_idx must hold one integer per frame ({target.numel()}), got "
                             f"{group_idx.numel()} values of dtype {group_idx.dtype}; use register_group(name).")
        if log_odds is None:
            log_odds = torch.logit(preds)
        elif log_odds.numel() != target.numel() or not torch.is_floating_point(log_odds):
            raise ValueError(f"DetectionScores: log_odds must hold one float per frame ({target.numel()}), got "
                             f"{log_odds.numel()} values of dtype {log_odds.dtype}.")
        self.preds.append(preds)
        self.log_odds.append(log_odds.detach().flatten().to(compute_dtype(log_odds.device)))
        self.target.append(target)
        self.video_idx.append(video_idx.detach().flatten().long())
        self.group_idx.append(group_idx.detach().flatten().long())

    def _all_group_names(self) -> dict[int, str]:
        """Group names registered on this rank, merged with every other rank's when states are synced."""
        names = dict(self.group_names)
        if self._is_synced and dist.is_available() and dist.is_initialized():
            group = self.process_group
            gathered: list[dict[int, str] | None] = [None] * dist.get_world_size(group)
            dist.all_gather_object(gathered, self.group_names, group=group)
            for rank_names in gathered:
                names.update(rank_names or {})
        return names

    def _level_scores(self, ranking: Tensor, preds: Tensor, target: Tensor, group: Tensor, threshold: float,
                      names: dict[int, str], level: str) -> dict[str, Tensor]:
        """Every metric of one level (ranking metrics on ``ranking``, thresholded ones on the probabilities
        ``preds``); NaN for undefined ones, one warning for the whole level."""
        scoring = self.scoring
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores: dict[str, Tensor] = {
                "auc": _roc_auc_compute(ranking, target),
                "ap": _average_precision_compute(ranking, target),
                "eer": _equal_error_rate_compute(ranking, target),
                "acc": _threshold_accuracy_compute(preds, target, threshold),
            }
            if scoring.fpr_points:
                tprs = _tpr_at_fpr_compute(ranking, target, scoring.fpr_points, scoring.tpr_positive_label)
                scores.update({f"{scoring.tpr_key}@fpr={rate_key(f)}": tprs[i]
                               for i, f in enumerate(scoring.fpr_points)})
            n_negatives = int((target != scoring.tpr_positive_label).sum())
            scores["n_negatives"] = torch.tensor(float(n_negatives), device=preds.device)
            scores[f"pauc@{scoring.max_fpr:g}"] = _partial_auc_compute(ranking, target, scoring.max_fpr)
            for far in scoring.tauc_fars:
                scores[f"tauc@{far:g}"] = _truncated_auc_compute(ranking, target, far, reading=scoring.tauc_reading)
            scores.update(_anti_spoofing_errors_compute(preds, target, group, threshold))
            if scoring.log_wp_recalls:
                log_wps = _log_weighted_precision_compute(ranking, target, scoring.log_wp_recalls, DFDC_ALPHA)
                scores.update({f"log_wp@recall={r:g}": log_wps[i] for i, r in enumerate(scoring.log_wp_recalls)})
            is_real = target == 0
            fake_groups = torch.unique(group[target == 1]).tolist()
            for group_id in sorted(fake_groups, key=lambda g: names.get(g, str(g))):
                if group_id == NO_ATTACK_TYPE:
                    continue
                name = names.get(group_id, str(group_id))
                keep = is_real | ((group == group_id) & (target == 1))
                scores[f"auc/{name}"] = _roc_auc_compute(ranking[keep], target[keep])
                scores[f"ap/{name}"] = _average_precision_compute(ranking[keep], target[keep])
                scores[f"acc/{name}"] = _threshold_accuracy_compute(preds[keep], target[keep], threshold)
                errors = _anti_spoofing_errors_compute(preds[keep], target[keep], group[keep], threshold)
                scores[f"apcer/{name}"], scores[f"acer/{name}"] = errors["apcer"], errors["acer"]
        undefined = sorted(key for key, value in scores.items() if bool(torch.isnan(value)))
        if caught and undefined:
            n_fake = int(target.sum())
            n_nan = int((torch.isnan(preds) | torch.isnan(ranking)).sum())
            nan_note = f", {n_nan} NaN scores" if n_nan else ""
            warnings.warn(f"DetectionScores: {level}-level {', '.join(undefined)} undefined on {target.numel()} "
                          f"samples ({n_fake} fake, {target.numel() - n_fake} real{nan_note}); returning NaN.",
                          UserWarning, stacklevel=3)
        return {f"{level}/{key}": value for key, value in scores.items()}

    def compute(self) -> dict[str, Tensor]:
        preds, log_odds, target = self.cat_state("preds"), self.cat_state("log_odds"), self.cat_state("target")
        video_idx, group = self.cat_state("video_idx"), self.cat_state("group_idx")
        names = self._all_group_names()
        aggregation, threshold = self.scoring.aggregation, self.scoring.threshold
        video_preds, video_target, unique_video_idx = aggregate_by_video(
            preds, target, video_idx, how=aggregation, threshold=threshold)
        video_log_odds = aggregate_log_odds_by_video(log_odds, preds, video_idx,  # ranking: may differ (DLDFD)
                                                     how=self.scoring.video_ranking_aggregation, threshold=threshold)
        _, frame_video = torch.unique(video_idx, sorted=True, return_inverse=True)
        video_group = segment_max(group, frame_video, unique_video_idx.numel())
        results = self._level_scores(log_odds, preds, target, group, threshold, names, "frame")
        results.update(self._level_scores(video_log_odds, video_preds, video_target, video_group,
                                          self.video_threshold, names, "video"))
        self.last_scores = {
            "frame_preds": preds.cpu().numpy(), "frame_ranking": log_odds.cpu().numpy(),
            "frame_target": target.cpu().numpy(), "frame_video_idx": video_idx.cpu().numpy(),
            "frame_group_idx": group.cpu().numpy(),
            "video_preds": video_preds.cpu().numpy(), "video_ranking": video_log_odds.cpu().numpy(),
            "video_target": video_target.cpu().numpy(), "video_idx": unique_video_idx.cpu().numpy(),
            "video_group_idx": video_group.cpu().numpy(),
            "tpr_positive_label": np.asarray(self.scoring.tpr_positive_label),
            "fpr_points": np.asarray(self.scoring.fpr_points, dtype=np.float64),
            "frame_threshold": np.asarray(threshold), "video_threshold": np.asarray(self.video_threshold),
        }
        return results
