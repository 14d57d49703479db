"""Threshold-free ranking metrics: area under the ROC curve (AUC) and average precision (AP).

Both reuse torchmetrics' own ``_compute`` functions (the same trapezoid / step sums as scikit-learn's
``roc_auc_score`` and ``average_precision_score``, tied scores treated as one operating point).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics.functional.classification.auroc import _binary_auroc_compute
from torchmetrics.functional.classification.average_precision import _binary_average_precision_compute

from lightning_dfd.metrics.base import (
    ScoreTargetMetric,
    as_curve_input,
    check_two_classes,
    format_scores,
    nan_like,
    orient,
)


def _roc_auc_compute(preds: Tensor, target: Tensor, positive_label: int = 1) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, "AUC"):
        return nan_like(preds)
    return _binary_auroc_compute((preds, target), thresholds=None).float()


def roc_auc(preds: Tensor, target: Tensor, positive_label: int = 1, validate_args: bool = True) -> Tensor:
    """Area under the ROC curve (TPR against FPR), 0.5 = chance, 1 = perfect ranking.

    Args:
        preds: scores of the positive class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        positive_label: 1 (fake / attack is positive, default) or 0 (AUC is unchanged by the swap).
        validate_args: check that ``target`` holds only 0 and 1.
    """
    preds, target = format_scores(preds, target, "AUC", validate_args)
    return _roc_auc_compute(preds, target, positive_label)


def _average_precision_compute(preds: Tensor, target: Tensor, positive_label: int = 1) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, "AP"):
        return nan_like(preds)
    return _binary_average_precision_compute((preds, target), thresholds=None).float()


def average_precision(preds: Tensor, target: Tensor, positive_label: int = 1,
                      validate_args: bool = True) -> Tensor:
    """Average precision ``AP = sum_n (R_n - R_{n-1}) P_n`` over the precision-recall curve (sklearn's sum).

    Args:
        preds: scores of the positive class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        positive_label: which label is the retrieved (positive) class.
        validate_args: check that ``target`` holds only 0 and 1.
    """
    preds, target = format_scores(preds, target, "AP", validate_args)
    return _average_precision_compute(preds, target, positive_label)


class RocAUC(ScoreTargetMetric):
    """Area under the ROC curve, accumulated over batches and synchronised across DDP ranks."""

    higher_is_better = True
    metric_name = "AUC"

    def __init__(self, positive_label: int = 1, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        return _roc_auc_compute(self.cat_state("preds"), self.cat_state("target"), self.positive_label)


class AveragePrecision(ScoreTargetMetric):
    """Average precision of the positive class, accumulated over batches and DDP ranks."""

    higher_is_better = True
    metric_name = "AP"

    def __init__(self, positive_label: int = 1, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        return _average_precision_compute(self.cat_state("preds"), self.cat_state("target"), self.positive_label)
