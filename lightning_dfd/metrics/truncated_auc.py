"""Truncated AUC (tAUC) of the two-branch recurrent detector (seed 004, Sec. 4 "Benchmarks and metrics").

The paper defines, for a cut-off ``FAR_tau`` and the grid ``F_tau = {0, ..., FAR_tau}``,
``tAUC_tau = sum_{i in F_tau} TAR_i / |F_tau|``: the mean TAR over false-acceptance rates up to the
cut-off, "the area of TARs up to a given low FAR_tau normalized by the total area up to FAR_tau". We read
the grid as continuous and compute

    tAUC_tau = (1 / FAR_tau) * integral_0^FAR_tau TAR(FAR) dFAR

on the ROC (TAR = TPR of the fake class, FAR = FPR = reals flagged as fake), joining ROC points linearly
(trapezoids, tied scores give diagonal segments) and interpolating TAR linearly at ``FAR_tau``. So a
perfect detector scores 1, chance ``FAR_tau / 2``. Unlike pAUC there is no McClish standardisation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_dfd.metrics.base import (
    ScoreTargetMetric,
    as_curve_input,
    check_two_classes,
    format_scores,
    nan_like,
    orient,
    roc_rates,
)


def _check_max_far(max_far: float) -> None:
    if not 0.0 < float(max_far) <= 1.0:
        raise ValueError(f"tAUC: the cut-off FAR must lie in (0, 1], got {max_far}.")


def roc_area_up_to(fpr: Tensor, tpr: Tensor, max_fpr: float) -> Tensor:
    """Trapezoidal area under ``tpr(fpr)`` over ``[0, max_fpr]``, interpolating linearly at ``max_fpr``.

    ``fpr`` must be non-decreasing, start at 0 and end at 1 (a ROC curve).
    """
    cut = torch.tensor(float(max_fpr), dtype=fpr.dtype, device=fpr.device)
    stop = int(torch.searchsorted(fpr, cut, right=True))  # first point with fpr > max_fpr
    if stop >= fpr.numel():  # max_fpr >= 1: the whole curve
        return torch.trapezoid(tpr, fpr)
    weight = (cut - fpr[stop - 1]) / (fpr[stop] - fpr[stop - 1])
    tpr_at_cut = torch.lerp(tpr[stop - 1], tpr[stop], weight)
    return torch.trapezoid(torch.cat([tpr[:stop], tpr_at_cut.view(1)]), torch.cat([fpr[:stop], cut.view(1)]))


def _truncated_auc_compute(preds: Tensor, target: Tensor, max_far: float, positive_label: int = 1) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, f"tAUC@{max_far:g}"):
        return nan_like(preds)
    fpr, tpr, _ = roc_rates(preds, target)
    return (roc_area_up_to(fpr, tpr, max_far) / float(max_far)).float()


def truncated_auc(preds: Tensor, target: Tensor, max_far: float = 0.01, positive_label: int = 1,
                  validate_args: bool = True) -> Tensor:
    """tAUC: mean TAR over FAR in ``[0, max_far]`` = ROC area up to ``max_far`` divided by ``max_far``.

    Args:
        preds: scores of the fake class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        max_far: the cut-off ``FAR_tau`` in (0, 1] (the paper reports 0.01 and 0.1).
        positive_label: which label is the positive (accepted-as-detected) class.
        validate_args: check that ``target`` holds only 0 and 1.
    """
    _check_max_far(max_far)
    preds, target = format_scores(preds, target, "tAUC", validate_args)
    return _truncated_auc_compute(preds, target, max_far, positive_label)


class TruncatedAUC(ScoreTargetMetric):
    """tAUC up to ``max_far`` (seed 004), accumulated over batches and DDP ranks."""

    higher_is_better = True
    metric_name = "tAUC"

    def __init__(self, max_far: float = 0.01, positive_label: int = 1, validate_args: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        _check_max_far(max_far)
        self.max_far = float(max_far)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        return _truncated_auc_compute(self.cat_state("preds"), self.cat_state("target"), self.max_far,
                                      self.positive_label)
