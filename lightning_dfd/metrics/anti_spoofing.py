"""Presentation attack detection error rates of ISO/IEC 30107-3 at a fixed decision threshold.

With ``attack <=> score >= threshold`` (scores are attack probabilities, label 1 = attack):

- APCER (attack presentation classification error rate): fraction of attack presentations classified as
  bona fide. ISO/IEC 30107-3 computes it per presentation attack instrument (PAI) species and reports the
  worst one, ``APCER = max_species APCER_species``; pass ``attack_type`` to get that, otherwise all attacks
  form one species.
- BPCER (bona fide presentation classification error rate): fraction of bona fide presentations classified
  as attacks.
- ACER (average classification error rate, used by the CASIA-SURF / Chalearn LAP challenges, seed 001
  Sec. 4): ``(APCER + BPCER) / 2``.

NaN in, NaN out: a NaN score is neither accepted nor rejected, so any NaN among the scores makes all three
values NaN (with a ``UserWarning``) instead of being counted as a bona fide decision.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from lightning_dfd.metrics.base import ScoreTargetMetric, format_scores, has_nan, nan_like, warn_undefined

NO_ATTACK_TYPE = -1
"""``attack_type`` value of samples without a known species (they form one species of their own)."""


def _format_attack_type(attack_type: Tensor | None, target: Tensor) -> Tensor:
    if attack_type is None:
        return torch.full_like(target, NO_ATTACK_TYPE)
    if attack_type.numel() != target.numel() or torch.is_floating_point(attack_type):
        raise ValueError(f"APCER: attack_type must be one integer per sample ({target.numel()}), got dtype "
                         f"{attack_type.dtype} and {attack_type.numel()} values.")
    return attack_type.detach().flatten().long()


def _anti_spoofing_errors_compute(preds: Tensor, target: Tensor, attack_type: Tensor, threshold: float
                                  ) -> dict[str, Tensor]:
    if has_nan(preds, "ACER"):
        nan = nan_like(preds)
        return {"apcer": nan, "bpcer": nan.clone(), "acer": nan.clone()}
    predicted_attack = preds >= threshold
    is_attack = target == 1
    if bool(is_attack.any()):
        species, species_index = torch.unique(attack_type[is_attack], return_inverse=True)
        missed = (~predicted_attack[is_attack]).double()
        missed_per_species = torch.zeros(species.numel(), dtype=torch.float64, device=preds.device)
        missed_per_species.index_add_(0, species_index, missed)
        count_per_species = torch.bincount(species_index, minlength=species.numel()).double()
        apcer = (missed_per_species / count_per_species).amax().float()
    else:
        warn_undefined("APCER", "no attack (label 1) samples")
        apcer = nan_like(preds)
    is_bona_fide = ~is_attack
    if bool(is_bona_fide.any()):
        bpcer = predicted_attack[is_bona_fide].float().mean()
    else:
        warn_undefined("BPCER", "no bona fide (label 0) samples")
        bpcer = nan_like(preds)
    return {"apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2}


def anti_spoofing_errors(preds: Tensor, target: Tensor, threshold: float = 0.5,
                         attack_type: Tensor | None = None, validate_args: bool = True) -> dict[str, Tensor]:
    """``{"apcer", "bpcer", "acer"}`` at ``threshold``; APCER is the max over ``attack_type`` species.

    Args:
        preds: attack probabilities, shape ``(N,)``.
        target: 1 = attack, 0 = bona fide, shape ``(N,)``.
        threshold: a sample is classified as attack when ``preds >= threshold``.
        attack_type: optional integer PAI species per sample (ignored for bona fide samples).
        validate_args: check that ``target`` holds only 0 and 1.
    """
    preds, target = format_scores(preds, target, "ACER", validate_args)
    return _anti_spoofing_errors_compute(preds, target, _format_attack_type(attack_type, target), threshold)


def apcer(preds: Tensor, target: Tensor, threshold: float = 0.5, attack_type: Tensor | None = None) -> Tensor:
    """APCER (worst PAI species when ``attack_type`` is given)."""
    return anti_spoofing_errors(preds, target, threshold, attack_type)["apcer"]


def bpcer(preds: Tensor, target: Tensor, threshold: float = 0.5) -> Tensor:
    """BPCER: fraction of bona fide samples classified as attacks."""
    return anti_spoofing_errors(preds, target, threshold)["bpcer"]


def acer(preds: Tensor, target: Tensor, threshold: float = 0.5, attack_type: Tensor | None = None) -> Tensor:
    """ACER = (APCER + BPCER) / 2."""
    return anti_spoofing_errors(preds, target, threshold, attack_type)["acer"]


class AntiSpoofingErrors(ScoreTargetMetric):
    """APCER / BPCER / ACER at a threshold; ``compute`` returns ``{"apcer", "bpcer", "acer"}``."""

    higher_is_better = False
    metric_name = "ACER"

    def __init__(self, threshold: float = 0.5, validate_args: bool = True, **kwargs: Any) -> None:
        super().__init__(validate_args=validate_args, **kwargs)
        self.threshold = threshold
        self.add_cat_state("attack_type", torch.int64)

    def update(self, preds: Tensor, target: Tensor, attack_type: Tensor | None = None) -> None:
        """Append a batch; ``attack_type`` (optional) is the integer PAI species of each sample."""
        preds, target = format_scores(preds, target, self.metric_name, self.validate_args)
        self.preds.append(preds)
        self.target.append(target)
        self.attack_type.append(_format_attack_type(attack_type, target))

    def compute(self) -> dict[str, Tensor]:
        preds = self.cat_state("preds")
        if preds.numel() == 0:
            warn_undefined("ACER", "no samples")
            nan = nan_like(preds)
            return {"apcer": nan, "bpcer": nan.clone(), "acer": nan.clone()}
        return _anti_spoofing_errors_compute(preds, self.cat_state("target"), self.cat_state("attack_type"),
                                             self.threshold)
