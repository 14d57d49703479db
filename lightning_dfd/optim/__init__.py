"""Optimisers and learning-rate schedules."""

from lightning_dfd.optim.sam import SAM, batchnorm_stats_frozen, laanet_sam
from lightning_dfd.optim.schedules import (
    CosineDecayLR,
    RampLinearDecayLR,
    cosine_decay_factor,
    ramp_linear_decay_factor,
)

__all__ = [
    "SAM",
    "CosineDecayLR",
    "RampLinearDecayLR",
    "batchnorm_stats_frozen",
    "cosine_decay_factor",
    "laanet_sam",
    "ramp_linear_decay_factor",
]
