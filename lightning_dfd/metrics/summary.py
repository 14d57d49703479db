"""``DetectionScores``: one Metric that collects frame scores and reports every detection metric at the
frame and video level, overall and per manipulation / attack type. It is what the shared
``DetectorModule`` logs; all states are ``"cat"`` states, so DDP ranks agree after ``compute``.

Keys of ``compute()`` (``level`` in ``frame``, ``video``):

- ``{level}/auc``, ``ap``, ``eer``, ``acc`` (accuracy at the threshold = DLDFD's TCR),
  ``tpr@fpr=1e-2`` ... (one per ``fpr_points``, fakes positive), ``pauc@0.1`` (McClish, ``max_fpr``),
  ``tauc@0.01`` ... (one per ``tauc_fars``), ``apcer``, ``bpcer``, ``acer`` (APCER = worst group, ISO/IEC
  30107-3), ``log_wp@recall=0.5`` ... (one per ``log_wp_recalls``, DFDC preview, none by default);
- per group ``g`` that has fake samples: ``{level}/auc/{g}``, ``{level}/ap/{g}``, ``{level}/acc/{g}``, computed
  on all reals plus the fakes of ``g`` (the FF++ per-manipulation protocol). Groups are the integer ids
  returned by ``register_group(name)``; names registered on any rank are gathered at ``compute``, and a
  group id nobody registered is named by its number.

Video level: frames are aggregated with ``aggregate_by_video(how=aggregation, threshold=threshold)``; the
video decision threshold is 0.5 for ``"vote"`` (majority vote of the frame decisions) and ``threshold``
otherwise. A video's group is the largest group id among its frames (one group per video is expected).
Undefined values (one class present, no samples) are NaN with one ``UserWarning`` per level.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from lightning_dfd.metrics.aggregation import (
    AGGREGATIONS,
    Aggregation,
    aggregate_by_video,
    segment_max,
    video_index,
)
from lightning_dfd.metrics.anti_spoofing import NO_ATTACK_TYPE, _anti_spoofing_errors_compute
from lightning_dfd.metrics.base import ScoreTargetMetric, format_scores
from lightning_dfd.metrics.eer import _equal_error_rate_compute
from lightning_dfd.metrics.log_weighted_precision import DFDC_ALPHA, _log_weighted_precision_compute
from lightning_dfd.metrics.operating_point import _threshold_accuracy_compute, _tpr_at_fpr_compute
from lightning_dfd.metrics.partial_auc import _partial_auc_compute
from lightning_dfd.metrics.ranking import _average_precision_compute, _roc_auc_compute
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
        aggregation: frame -> video aggregation, ``"mean"``, ``"vote"`` or ``"max"``.
        threshold: decision threshold on the fake probability (accuracy, APCER/BPCER/ACER, votes).
        fpr_points: FPRs at which TPR is reported (fake = positive, largest TPR with FPR <= the point).
        max_fpr: upper FPR of the standardised partial AUC.
        tauc_fars: cut-off FARs of the truncated AUC (seed 004).
        log_wp_recalls: recall levels of the DFDC log weighted precision (alpha = 100); empty = not reported.
    """

    higher_is_better = None
    metric_name = "DetectionScores"

    def __init__(self, aggregation: Aggregation = "mean", threshold: float = 0.5,
                 fpr_points: Sequence[float] = (1e-2, 1e-3, 1e-4), max_fpr: float = 0.1,
                 tauc_fars: Sequence[float] = (0.01, 0.1), log_wp_recalls: Sequence[float] = (),
                 validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"DetectionScores: aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
        self.aggregation = aggregation
        self.threshold = float(threshold)
        self.fpr_points = tuple(float(f) for f in fpr_points)
        self.max_fpr = float(max_fpr)
        self.tauc_fars = tuple(float(f) for f in tauc_fars)
        self.log_wp_recalls = tuple(float(r) for r in log_wp_recalls)
        self.add_cat_state("video_idx", torch.int64)
        self.add_cat_state("group_idx", torch.int64)
        self.group_names: dict[int, str] = {}
        self.last_scores: dict[str, np.ndarray] = {}

    @property
    def video_threshold(self) -> float:
        """Decision threshold on video scores: 0.5 for majority vote, else the frame threshold."""
        return 0.5 if self.aggregation == "vote" else self.threshold

    def register_group(self, name: str) -> int:
        """Stable integer id of a group (manipulation or attack type) name; the name is remembered."""
        group_id = group_index(name)
        self.group_names[group_id] = name
        return group_id

    def update(self, preds: Tensor, target: Tensor, video_idx: Tensor, group_idx: Tensor | None = None) -> None:
        """Append a batch of frame fake probabilities, labels, video ids and (optionally) group ids."""
        preds, target = format_scores(preds, target, self.metric_name, self.validate_args)
        if video_idx.numel() != target.numel() or torch.is_floating_point(video_idx):
            raise ValueError(f"DetectionScores: video_idx must hold one integer per frame ({target.numel()}), got "
                             f"{video_idx.numel()} values of dtype {video_idx.dtype}; build it with "
                             "lightning_dfd.metrics.video_indices(batch['video_id']).")
        if group_idx is None:
            group_idx = torch.full_like(target, NO_ATTACK_TYPE)
        elif group_idx.numel() != target.numel() or torch.is_floating_point(group_idx):
            raise ValueError(f"DetectionScores: group_idx must hold one integer per frame ({target.numel()}), got "
                             f"{group_idx.numel()} values of dtype {group_idx.dtype}; use register_group(name).")
        self.preds.append(preds.float())
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

    def _level_scores(self, preds: Tensor, target: Tensor, group: Tensor, threshold: float,
                      names: dict[int, str], level: str) -> dict[str, Tensor]:
        """Every metric of one level; NaN for undefined ones, one warning for the whole level."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores: dict[str, Tensor] = {
                "auc": _roc_auc_compute(preds, target),
                "ap": _average_precision_compute(preds, target),
                "eer": _equal_error_rate_compute(preds, target),
                "acc": _threshold_accuracy_compute(preds, target, threshold),
            }
            if self.fpr_points:
                tprs = _tpr_at_fpr_compute(preds, target, self.fpr_points)
                scores.update({f"tpr@fpr={rate_key(f)}": tprs[i] for i, f in enumerate(self.fpr_points)})
            scores[f"pauc@{self.max_fpr:g}"] = _partial_auc_compute(preds, target, self.max_fpr)
            for far in self.tauc_fars:
                scores[f"tauc@{far:g}"] = _truncated_auc_compute(preds, target, far)
            scores.update(_anti_spoofing_errors_compute(preds, target, group, threshold))
            if self.log_wp_recalls:
                log_wps = _log_weighted_precision_compute(preds, target, self.log_wp_recalls, DFDC_ALPHA)
                scores.update({f"log_wp@recall={r:g}": log_wps[i] for i, r in enumerate(self.log_wp_recalls)})
            is_real = target == 0
            fake_groups = torch.unique(group[target == 1]).tolist()
            for group_id in sorted(fake_groups, key=lambda g: names.get(g, str(g))):
                if group_id == NO_ATTACK_TYPE:
                    continue
                name = names.get(group_id, str(group_id))
                keep = is_real | ((group == group_id) & (target == 1))
                scores[f"auc/{name}"] = _roc_auc_compute(preds[keep], target[keep])
                scores[f"ap/{name}"] = _average_precision_compute(preds[keep], target[keep])
                scores[f"acc/{name}"] = _threshold_accuracy_compute(preds[keep], target[keep], threshold)
        undefined = sorted(key for key, value in scores.items() if bool(torch.isnan(value)))
        if caught and undefined:
            n_fake = int(target.sum())
            warnings.warn(f"DetectionScores: {level}-level {', '.join(undefined)} undefined on {target.numel()} "
                          f"samples ({n_fake} fake, {target.numel() - n_fake} real); returning NaN.",
                          UserWarning, stacklevel=3)
        return {f"{level}/{key}": value for key, value in scores.items()}

    def compute(self) -> dict[str, Tensor]:
        preds, target = self.cat_state("preds"), self.cat_state("target")
        video_idx, group = self.cat_state("video_idx"), self.cat_state("group_idx")
        names = self._all_group_names()
        video_preds, video_target, unique_video_idx = aggregate_by_video(
            preds, target, video_idx, how=self.aggregation, threshold=self.threshold)
        _, frame_video = torch.unique(video_idx, sorted=True, return_inverse=True)
        video_group = segment_max(group, frame_video, unique_video_idx.numel())
        results = self._level_scores(preds, target, group, self.threshold, names, "frame")
        results.update(self._level_scores(video_preds, video_target, video_group, self.video_threshold, names,
                                          "video"))
        self.last_scores = {
            "frame_preds": preds.cpu().numpy(), "frame_target": target.cpu().numpy(),
            "frame_video_idx": video_idx.cpu().numpy(), "frame_group_idx": group.cpu().numpy(),
            "video_preds": video_preds.cpu().numpy(), "video_target": video_target.cpu().numpy(),
            "video_idx": unique_video_idx.cpu().numpy(), "video_group_idx": video_group.cpu().numpy(),
        }
        return results
