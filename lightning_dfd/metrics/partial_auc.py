"""Standardised partial AUC up to ``max_fpr`` (McClish 1989), as reported by the two-branch paper (seed 004).

``pAUC = 1/2 * (1 + (A - A_min) / (A_max - A_min))`` with ``A`` the ROC area over ``FPR in [0, max_fpr]``
(the curve linearly interpolated at ``max_fpr``), ``A_min = max_fpr^2 / 2`` (chance) and ``A_max = max_fpr``
(perfect), so chance scores 0.5 and a perfect ranking 1. Identical to scikit-learn
``roc_auc_score(y, p, max_fpr=max_fpr)``; the computation is torchmetrics' ``_binary_auroc_compute``.
Unlike TAR@FAR and tAUC (which read the ROC as steps), pAUC keeps sklearn's / McClish's linear segments
between ROC points, so under tied scores it is not ``tAUC(reading="far_grid")`` rescaled.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor
from torchmetrics.functional.classification.auroc import _binary_auroc_compute

from lightning_dfd.metrics.base import (
    ScoreTargetMetric,
    as_curve_input,
    check_two_classes,
    format_scores,
    nan_like,
    orient,
)


def _check_max_fpr(max_fpr: float) -> None:
    if not 0.0 < float(max_fpr) <= 1.0:
        raise ValueError(f"pAUC: max_fpr must lie in (0, 1], got {max_fpr}.")


def _partial_auc_compute(preds: Tensor, target: Tensor, max_fpr: float, positive_label: int = 1) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, f"pAUC@{max_fpr:g}"):
        return nan_like(preds)
    return _binary_auroc_compute((preds, target), thresholds=None, max_fpr=float(max_fpr)).float()


def partial_auc(preds: Tensor, target: Tensor, max_fpr: float = 0.1, positive_label: int = 1,
                validate_args: bool = True) -> Tensor:
    """McClish-standardised partial AUC over ``FPR <= max_fpr`` (= sklearn ``roc_auc_score(max_fpr=...)``).

    Args:
        preds: scores of the positive class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        max_fpr: upper end of the FPR range, in (0, 1]; 1 gives the full AUC.
        positive_label: which label is the positive class.
        validate_args: check that ``target`` holds only 0 and 1.
    """
    _check_max_fpr(max_fpr)
    preds, target = format_scores(preds, target, "pAUC", validate_args)
    return _partial_auc_compute(preds, target, max_fpr, positive_label)


class PartialAUC(ScoreTargetMetric):
    """Standardised partial AUC up to ``max_fpr``, accumulated over batches and DDP ranks."""

    higher_is_better = True
    metric_name = "pAUC"

    def __init__(self, max_fpr: float = 0.1, positive_label: int = 1, validate_args: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        _check_max_fpr(max_fpr)
        self.max_fpr = float(max_fpr)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        return _partial_auc_compute(self.cat_state("preds"), self.cat_state("target"), self.max_fpr,
                                    self.positive_label)
