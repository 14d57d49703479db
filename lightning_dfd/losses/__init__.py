"""Losses shared by the methods."""

from lightning_dfd.losses.heatmap_focal import (
    LAANetLoss,
    cornernet_focal_loss,
    heatmap_focal_loss,
    released_focal_loss,
    self_consistency_loss,
    smoothed_bce_with_logits,
)

__all__ = [
    "LAANetLoss",
    "cornernet_focal_loss",
    "heatmap_focal_loss",
    "released_focal_loss",
    "self_consistency_loss",
    "smoothed_bce_with_logits",
]
