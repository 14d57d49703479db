"""Log weighted precision, the DFDC preview metric.

Dolhansky et al. 2019, "The Deepfake Detection Challenge (DFDC) Preview Dataset" (arXiv:1910.08854), Sec. 4:
deepfakes are rare in organic traffic, so false positives are weighted by ``alpha`` (the paper uses 100):

    wP = TP / (TP + alpha * FP),   reported as log(wP) (natural logarithm here), at fixed recall levels.

Operating point: the strictest threshold (highest score cut, ``fake <=> score >= t``) whose recall
``TP / P`` reaches the requested level; ``TP`` and ``FP`` are counted there. ``log(wP) = 0`` is perfect
(no false positive), and it decreases without bound as false positives grow.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from lightning_dfd.metrics.base import (
    ScoreTargetMetric,
    as_curve_input,
    check_two_classes,
    format_scores,
    orient,
    roc_counts,
)

DFDC_ALPHA = 100.0


def _check_recalls(recalls: Sequence[float], alpha: float) -> None:
    for recall in recalls:
        if not 0.0 < float(recall) <= 1.0:
            raise ValueError(f"log(wP): recall levels must lie in (0, 1], got {recall}.")
    if alpha <= 0:
        raise ValueError(f"log(wP): alpha must be positive, got {alpha}.")


def _log_weighted_precision_compute(preds: Tensor, target: Tensor, recalls: Sequence[float],
                                    alpha: float = DFDC_ALPHA, positive_label: int = 1) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, "log(wP)"):
        return torch.full((len(recalls),), float("nan"), device=preds.device)
    fps, tps, _ = roc_counts(preds, target)
    n_positive = tps[-1]
    levels = torch.as_tensor([float(r) for r in recalls], dtype=tps.dtype, device=preds.device)
    # tps is non-decreasing: the first index with TP >= recall * P is the strictest threshold reaching it.
    needed_tp = torch.ceil(levels * n_positive - 1e-9)
    index = torch.searchsorted(tps, needed_tp, right=False).clamp(max=tps.numel() - 1)
    tp, fp = tps[index], fps[index]
    return torch.log(tp / (tp + alpha * fp)).float()


def log_weighted_precision(preds: Tensor, target: Tensor, recall: float | Sequence[float] = 0.5,
                           alpha: float = DFDC_ALPHA, positive_label: int = 1,
                           validate_args: bool = True) -> Tensor:
    """``log(TP / (TP + alpha * FP))`` at the strictest threshold reaching ``recall`` (scalar or vector).

    Args:
        preds: scores of the fake class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        recall: recall level(s) in (0, 1]; the DFDC preview paper reports 0.1, 0.5 and 0.9.
        alpha: weight of a false positive (100 in the paper).
        positive_label: which label is the positive class.
        validate_args: check that ``target`` holds only 0 and 1.
    """
    recalls = [recall] if isinstance(recall, (int, float)) else list(recall)
    _check_recalls(recalls, alpha)
    preds, target = format_scores(preds, target, "log(wP)", validate_args)
    values = _log_weighted_precision_compute(preds, target, recalls, alpha, positive_label)
    return values[0] if isinstance(recall, (int, float)) else values


class LogWeightedPrecision(ScoreTargetMetric):
    """DFDC preview log(wP) at one or several recall levels, accumulated over batches and DDP ranks."""

    higher_is_better = True
    metric_name = "log(wP)"

    def __init__(self, recall: float | Sequence[float] = 0.5, alpha: float = DFDC_ALPHA, positive_label: int = 1,
                 validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.recalls = [float(recall)] if isinstance(recall, (int, float)) else [float(r) for r in recall]
        self.single_recall = isinstance(recall, (int, float))
        _check_recalls(self.recalls, alpha)
        self.alpha = float(alpha)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        values = _log_weighted_precision_compute(self.cat_state("preds"), self.cat_state("target"), self.recalls,
                                                 self.alpha, self.positive_label)
        return values[0] if self.single_recall else values
