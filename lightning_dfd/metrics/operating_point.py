"""Metrics read at one operating point: TPR at a fixed FPR (= TAR at FAR) and accuracy at a threshold (TCR).

TPR@FPR definition (no interpolation): the largest TPR among the ROC points whose FPR does not exceed the
target, i.e. ``max{TPR(t) : FPR(t) <= fpr}`` over every threshold ``t`` realisable on the data (the *step*
reading of the ROC; tied scores form one point). The truncated AUC reads the same points
(:mod:`lightning_dfd.metrics.truncated_auc`).

Too few negatives: the resolution of the FPR is ``1 / n_negatives``. For ``0 < fpr < 1 / n_negatives`` the
value would just be the TPR at zero false positives (TPR@FPR=1e-4 from 32 reals is not a measurement), so it
is reported as NaN with a ``UserWarning`` naming the number of negatives; ``fpr = 0`` stays defined.
``DetectionScores`` also reports ``{level}/n_negatives`` so a reader sees which rates the data can measure.
With enough negatives (``fpr >= 1 / n_negatives``) but no threshold reaching the rate (the top-scored negatives
outscore every positive, so the first ROC point after (0, 0) already has FPR > ``fpr``) the value is 0: a
measurement (nothing can be accepted at that rate), neither NaN nor an error.

Conventions:

- Deepfake detection (default, ``positive_label=1``): positive = fake, so TPR@FPR is the fraction of fakes
  caught while at most ``fpr`` of the reals are flagged; this is the TAR@FAR of the two-branch recurrent
  paper (seed 004, Sec. 4: "TAR at low FAR", false alarms = reals called fake).
- Anti-spoofing challenge (seed 001, Sec. 4, "TPR at FPR = 1e-4", Chalearn LAP CASIA-SURF): positive =
  bona fide, i.e. the fraction of bona fide faces accepted while at most ``fpr`` of the attacks are accepted.
  Keep passing attack probabilities with attack = 1 and call ``tpr_at_fpr(p_attack, y, 1e-4,
  positive_label=0)`` (equivalently ``tpr_at_fpr(1 - p_attack, 1 - y, 1e-4)``).

TCR (true classification rate) of DLDFD (seed 002, Tables 2-4) is the fraction of correctly classified
samples with ``fake <=> p >= threshold``.
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
    has_nan,
    nan_like,
    orient,
    roc_rates,
    warn_undefined,
)

# FPR comparisons tolerate float rounding of k / n_negatives (k / n == fpr exactly must count as <= fpr).
_FPR_TOLERANCE = 1e-12


def _check_fprs(fprs: Sequence[float]) -> None:
    for fpr in fprs:
        if not 0.0 <= float(fpr) <= 1.0:
            raise ValueError(f"TPR@FPR: the target false positive rate must lie in [0, 1], got {fpr}.")


def _tpr_at_fpr_compute(preds: Tensor, target: Tensor, fprs: Sequence[float], positive_label: int = 1
                        ) -> Tensor:
    preds, target = orient(*as_curve_input(preds, target), positive_label)
    if not check_two_classes(preds, target, "TPR@FPR"):
        return torch.full((len(fprs),), float("nan"), device=preds.device)
    fpr_curve, tpr_curve, _ = roc_rates(preds, target)
    targets = torch.as_tensor([float(f) for f in fprs], dtype=fpr_curve.dtype, device=preds.device)
    allowed = fpr_curve[None, :] <= targets[:, None] + _FPR_TOLERANCE  # (n_targets, n_points)
    # (0, 0) is always allowed, so the masked max is well defined.
    values = torch.where(allowed, tpr_curve[None, :], torch.zeros_like(tpr_curve)[None, :]).amax(dim=1).float()
    n_negatives = int((target == 0).sum())
    unmeasurable = (targets > 0) & (targets * n_negatives < 1 - 1e-9)
    if bool(unmeasurable.any()):
        rates = ", ".join(f"{f:g}" for f, bad in zip(fprs, unmeasurable.tolist()) if bad)
        warn_undefined(f"TPR@FPR={rates}", f"only {n_negatives} negatives, fewer than 1 / FPR; the smallest "
                                           f"measurable non-zero FPR is {1 / n_negatives:.3g}")
        values = torch.where(unmeasurable, torch.full_like(values, float("nan")), values)
    return values


def tpr_at_fpr(preds: Tensor, target: Tensor, fpr: float | Sequence[float], positive_label: int = 1,
               validate_args: bool = True) -> Tensor:
    """Largest TPR with FPR <= ``fpr`` (no interpolation); a scalar, or a vector for a sequence of ``fpr``.

    Args:
        preds: scores of the attack / fake class, shape ``(N,)``.
        target: labels 0/1, shape ``(N,)``.
        fpr: target false positive rate(s) in [0, 1].
        positive_label: 1 = fakes are the positives (deepfake convention); 0 = bona fide are the positives
            (anti-spoofing convention of seed 001: bona fide accepted at a fixed rate of accepted attacks).
        validate_args: check that ``target`` holds only 0 and 1.
    """
    fprs = [fpr] if isinstance(fpr, (int, float)) else list(fpr)
    _check_fprs(fprs)
    preds, target = format_scores(preds, target, "TPR@FPR", validate_args)
    values = _tpr_at_fpr_compute(preds, target, fprs, positive_label)
    return values[0] if isinstance(fpr, (int, float)) else values


tar_at_far = tpr_at_fpr
"""TAR at FAR (seed 004's name for TPR at FPR with fakes as the positive class)."""


def _threshold_accuracy_compute(preds: Tensor, target: Tensor, threshold: float) -> Tensor:
    if target.numel() == 0:
        warn_undefined("ACC", "no samples")
        return nan_like(preds)
    if has_nan(preds, "ACC"):  # NaN >= threshold is False: a NaN would count as a "real" decision
        return nan_like(preds)
    predicted_fake = (preds >= threshold).long()
    return (predicted_fake == target).float().mean()


def threshold_accuracy(preds: Tensor, target: Tensor, threshold: float = 0.5,
                       validate_args: bool = True) -> Tensor:
    """Fraction of samples classified correctly with ``fake <=> preds >= threshold`` (DLDFD's TCR).

    Defined with one class present; NaN (with a warning) without samples or with a NaN score.
    """
    preds, target = format_scores(preds, target, "ACC", validate_args)
    return _threshold_accuracy_compute(preds, target, threshold)


true_classification_rate = threshold_accuracy
"""TCR of DLDFD (seed 002): the threshold accuracy."""


class TPRAtFPR(ScoreTargetMetric):
    """TPR at one or several fixed FPRs; ``compute`` returns a scalar for one ``fpr``, else a vector."""

    higher_is_better = True
    metric_name = "TPR@FPR"

    def __init__(self, fpr: float | Sequence[float] = 1e-2, positive_label: int = 1, validate_args: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.fprs = [float(fpr)] if isinstance(fpr, (int, float)) else [float(f) for f in fpr]
        self.single_fpr = isinstance(fpr, (int, float))
        _check_fprs(self.fprs)
        self.positive_label = positive_label

    def compute(self) -> Tensor:
        values = _tpr_at_fpr_compute(self.cat_state("preds"), self.cat_state("target"), self.fprs,
                                     self.positive_label)
        return values[0] if self.single_fpr else values


TARAtFAR = TPRAtFPR


class ThresholdAccuracy(ScoreTargetMetric):
    """Accuracy at a fixed threshold on the fake probability (TCR), accumulated over batches and DDP ranks."""

    higher_is_better = True
    metric_name = "ACC"

    def __init__(self, threshold: float = 0.5, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.threshold = threshold

    def compute(self) -> Tensor:
        return _threshold_accuracy_compute(self.cat_state("preds"), self.cat_state("target"), self.threshold)
