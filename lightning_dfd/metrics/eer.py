"""Equal error rate (EER): the ROC operating point where false positive and false negative rates meet.

Definition (torchmetrics' ``_binary_eer_compute``, reused): among the ROC points (one per distinct score,
plus the origin) take the one minimising ``|FPR - FNR|`` with ``FNR = 1 - TPR`` (the first one on a tie, in
order of decreasing threshold) and return ``(FPR + FNR) / 2`` there. No interpolation between points.
"""

from __future__ import annotations

from torch import Tensor
from torchmetrics.functional.classification.eer import _binary_eer_compute

from lightning_dfd.metrics.base import (
    ScoreTargetMetric,
    as_curve_input,
    check_two_classes,
    format_scores,
    nan_like,
    roc_rates,
)


def _equal_error_rate_compute(preds: Tensor, target: Tensor) -> Tensor:
    preds, target = as_curve_input(preds, target)
    if not check_two_classes(preds, target, "EER"):
        return nan_like(preds)
    fpr, tpr, _ = roc_rates(preds, target)
    return _binary_eer_compute(fpr, tpr).float()


def equal_error_rate(preds: Tensor, target: Tensor, validate_args: bool = True) -> Tensor:
    """EER in [0, 1] (lower is better); symmetric in the two classes, so it has no ``positive_label``.

    Args:
        preds: scores of the positive class (fake / attack), shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        validate_args: check that ``target`` holds only 0 and 1.
    """
    preds, target = format_scores(preds, target, "EER", validate_args)
    return _equal_error_rate_compute(preds, target)


class EqualErrorRate(ScoreTargetMetric):
    """Equal error rate accumulated over batches and DDP ranks."""

    higher_is_better = False
    metric_name = "EER"

    def compute(self) -> Tensor:
        return _equal_error_rate_compute(self.cat_state("preds"), self.cat_state("target"))
