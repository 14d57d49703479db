"""Shared plumbing of the detection metrics: input checks, undefined-value handling, ROC counts, base Metric.

Conventions used by every metric in this package:

- ``preds`` are scores of the positive class, higher = more likely positive. Ranking metrics (AUC, AP, EER,
  TPR@FPR, pAUC, tAUC, log(wP)) accept any real-valued, order-preserving score (the pipeline passes float64
  log-odds, i.e. the model's logits, so that confident scores do not tie at a probability of 1.0) and never
  apply a sigmoid; threshold metrics (accuracy, APCER/BPCER/ACER, votes) compare probabilities
  ``preds >= threshold``. The Metric classes keep scores in float64 (float32 on MPS, which lacks float64).
- ``target`` holds integers 0 (real / bona fide) and 1 (fake / attack).
- ``positive_label=0`` swaps the roles of the classes (scores are negated, an exact order reversal, and the
  labels flipped), e.g. the anti-spoofing convention where bona fide is the positive, accepted class.
- A value that is undefined on the data (one class only, no samples) is returned as NaN with a ``UserWarning``
  naming the metric; metrics never raise on such data. NaN in, NaN out: every metric whose input holds a NaN
  score returns NaN with a ``UserWarning`` (never counts a NaN as a real or a fake).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification.precision_recall_curve import _binary_clf_curve
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors


def warn_undefined(metric_name: str, reason: str) -> None:
    """Emit the ``UserWarning`` that accompanies a NaN result."""
    warnings.warn(f"{metric_name} is undefined ({reason}); returning NaN.", UserWarning, stacklevel=3)


def nan_like(reference: Tensor) -> Tensor:
    """A scalar NaN (float32) on the device of ``reference``."""
    return torch.tensor(float("nan"), dtype=torch.float32, device=reference.device)


def compute_dtype(device: torch.device) -> torch.dtype:
    """Curves are computed in float64 (sklearn's precision) except where the backend lacks it (MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def format_scores(preds: Tensor, target: Tensor, metric_name: str, validate_args: bool = True
                  ) -> tuple[Tensor, Tensor]:
    """Flatten and check one batch: float scores, 0/1 integer targets of the same length.

    Returns ``(preds, target)`` detached, ``preds`` in the curve precision (float64 unless on MPS), ``target``
    as int64.
    """
    if preds.numel() != target.numel():
        raise ValueError(f"{metric_name}: preds has shape {tuple(preds.shape)} but target has shape "
                         f"{tuple(target.shape)}; pass one score per sample.")
    if not torch.is_floating_point(preds):
        raise ValueError(f"{metric_name}: preds must be float scores (probabilities of the positive class), "
                         f"got dtype {preds.dtype}; convert with preds.float().")
    if torch.is_floating_point(target):
        raise ValueError(f"{metric_name}: target must hold integer labels 0/1, got dtype {target.dtype}; "
                         "convert with target.long().")
    preds = preds.detach().flatten().to(compute_dtype(preds.device))
    target = target.detach().flatten().long()
    if validate_args and target.numel() and not bool(((target == 0) | (target == 1)).all()):
        found = torch.unique(target).tolist()
        raise ValueError(f"{metric_name}: target must contain only 0 (real / bona fide) and 1 (fake / attack), "
                         f"found values {found}.")
    return preds, target


def orient(preds: Tensor, target: Tensor, positive_label: int) -> tuple[Tensor, Tensor]:
    """Make ``positive_label`` the class with label 1 and the higher scores (negation is exact)."""
    if positive_label == 1:
        return preds, target
    if positive_label == 0:
        return -preds, 1 - target
    raise ValueError(f"positive_label must be 0 or 1, got {positive_label}.")


def check_two_classes(preds: Tensor, target: Tensor, metric_name: str) -> bool:
    """True when both classes are present and the scores are finite; otherwise warn and return False."""
    n_samples = target.numel()
    if n_samples == 0:
        warn_undefined(metric_name, "no samples")
        return False
    n_positive = int(target.sum())
    if n_positive == 0 or n_positive == n_samples:
        warn_undefined(metric_name, f"only one class present: {n_positive} positives, "
                                    f"{n_samples - n_positive} negatives")
        return False
    return not has_nan(preds, metric_name)


def has_nan(preds: Tensor, metric_name: str) -> bool:
    """True (with the ``UserWarning`` of a NaN result) when ``preds`` hold a NaN score."""
    n_nan = int(torch.isnan(preds).sum())
    if n_nan:
        warn_undefined(metric_name, f"preds contain {n_nan} NaN of {preds.numel()} scores")
        return True
    return False


def roc_counts(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """False/true positive counts at every distinct threshold, from the strictest down, with a leading (0, 0).

    Thin wrapper over torchmetrics' ``_binary_clf_curve`` (sklearn's algorithm: tied scores form one point).
    Returns ``(fps, tps, thresholds)`` with counts as float64; ``thresholds[0]`` is ``+inf`` and a sample is
    predicted positive at threshold ``t`` when ``score >= t``.
    """
    fps, tps, thresholds = _binary_clf_curve(preds, target)
    dtype = compute_dtype(preds.device)
    zero = torch.zeros(1, dtype=dtype, device=preds.device)
    fps = torch.cat([zero, fps.to(dtype)])
    tps = torch.cat([zero, tps.to(dtype)])
    thresholds = torch.cat([torch.full((1,), float("inf"), dtype=thresholds.dtype, device=preds.device),
                            thresholds])
    return fps, tps, thresholds


def roc_rates(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(fpr, tpr, thresholds)`` of the ROC, the same points as sklearn ``roc_curve(drop_intermediate=False)``."""
    fps, tps, thresholds = roc_counts(preds, target)
    return fps / fps[-1], tps / tps[-1], thresholds


def as_curve_input(preds: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Scores in the curve precision (float64 unless on MPS), targets int64.

    Infinite scores (log-odds of probabilities 0 or 1) become the largest finite values of their sign: the
    curve code finds ties by differences, and ``inf - inf`` is NaN, which would split a tie. NaN stays NaN.
    """
    preds = preds.to(compute_dtype(preds.device))
    largest = torch.finfo(preds.dtype).max
    return torch.nan_to_num(preds, nan=float("nan"), posinf=largest, neginf=-largest), target.long()


class ScoreTargetMetric(Metric):
    """Base of the metrics that keep every (score, label) pair as ``"cat"`` states and compute at the end.

    Subclasses set ``metric_name`` and implement ``compute`` on ``self.cat_states()``.
    """

    is_differentiable = False
    full_state_update = False
    metric_name = "metric"

    def __init__(self, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validate_args = validate_args
        self._cat_state_dtypes: dict[str, torch.dtype] = {}
        self.add_cat_state("preds", torch.float64)
        self.add_cat_state("target", torch.int64)

    def add_cat_state(self, name: str, dtype: torch.dtype) -> None:
        """Register a list state gathered with ``"cat"`` and remember its dtype for empty ranks."""
        self.add_state(name, default=[], dist_reduce_fx="cat")
        self._cat_state_dtypes[name] = dtype

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Append one batch of scores of the positive class (kept in float64) and 0/1 labels."""
        preds, target = format_scores(preds, target, self.metric_name, self.validate_args)
        self.preds.append(preds)
        self.target.append(target)

    def cat_state(self, name: str) -> Tensor:
        """The concatenated state ``name`` (an empty tensor of the right dtype when nothing was added)."""
        value = getattr(self, name)
        if isinstance(value, Tensor):
            return value
        if len(value) == 0:
            return torch.empty(0, dtype=self._cat_state_dtypes[name], device=self.device)
        return dim_zero_cat(value)

    def _sync_dist(self, dist_sync_fn: Any = gather_all_tensors, process_group: Any | None = None) -> None:
        # A rank that saw no data would otherwise contribute a float32 placeholder (torchmetrics' default),
        # which mismatches the int64 states of the other ranks in the all_gather. Give it the right dtype.
        for name, dtype in self._cat_state_dtypes.items():
            value = getattr(self, name)
            if isinstance(value, list) and len(value) == 0:
                setattr(self, name, [torch.empty(0, dtype=dtype, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group)
