"""Optimisers and learning-rate schedules."""

from lightning_dfd.optim.sam import SAM, batchnorm_stats_frozen, laanet_sam
from lightning_dfd.optim.schedules import RampLinearDecayLR, ramp_linear_decay_factor

__all__ = ["SAM", "RampLinearDecayLR", "batchnorm_stats_frozen", "laanet_sam", "ramp_linear_decay_factor"]
