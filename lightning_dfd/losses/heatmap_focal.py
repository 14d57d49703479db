"""LAA-Net losses (seed 003, Sec. 3.1.2): heatmap focal loss (Eq. 5-6), self-consistency BCE, classification BCE
with label smoothing, and their weighted sum (Eq. 8).

All functions take logits; probabilities are formed inside with log-sigmoid, so no clamping is needed.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

HeatmapLossVariant = Literal["paper", "cornernet"]


def heatmap_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0, positive_atol: float = 1e-6) -> Tensor:
    """Eq. 5-6 as written: L_H = sum_ij -(1 - h~_ij)^gamma log h~_ij, h~ = h^ where h = 1, else 1 - h^.

    Pixels with ground truth h = 1 (within ``positive_atol``) are positives; every other pixel (including the
    Gaussian's flanks) is a negative. The sum runs over the pixels of each map; the batch is averaged.

    Args:
        logits: (B, 1, h, w) predicted heatmap logits, h^ = sigmoid(logits).
        target: (B, 1, h, w) ground-truth heatmap H in [0, 1].
        gamma: the focusing exponent of Eq. 5.
    """
    _check_same_shape(logits, target, "heatmap")
    positive = target >= 1.0 - positive_atol
    # log h~ and 1 - h~ for both cases: h~ = sigmoid(+x) on positives, sigmoid(-x) on negatives
    signed = torch.where(positive, logits, -logits)
    log_h_tilde = F.logsigmoid(signed)
    one_minus_h_tilde = torch.sigmoid(-signed)
    per_pixel = -one_minus_h_tilde.pow(gamma) * log_h_tilde
    return per_pixel.flatten(1).sum(dim=1).mean()


def cornernet_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0,
                         positive_atol: float = 1e-6) -> Tensor:
    """CornerNet's variant (Law & Deng): negatives down-weighted near the peaks, normalised by the positives.

    L = -1/N_pos sum { (1 - h^)^alpha log h^                       if h = 1
                     { (1 - h)^beta h^^alpha log(1 - h^)           otherwise

    with N_pos the number of positives in the batch (when there is none, the negative sum is returned).
    """
    _check_same_shape(logits, target, "heatmap")
    positive = target >= 1.0 - positive_atol
    prob = torch.sigmoid(logits)
    positive_term = (1.0 - prob).pow(alpha) * F.logsigmoid(logits)
    negative_term = (1.0 - target).pow(beta) * prob.pow(alpha) * F.logsigmoid(-logits)
    total = -(torch.where(positive, positive_term, negative_term)).sum()
    num_positive = positive.sum()
    return total / num_positive.clamp(min=1).to(total.dtype)


def self_consistency_loss(logits: Tensor, target: Tensor) -> Tensor:
    """L_C: binary cross-entropy between the predicted map C^ = sigmoid(logits) and C of Eq. 7 (pixel mean)."""
    _check_same_shape(logits, target, "consistency")
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def smoothed_bce_with_logits(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """L_BCE with label smoothing (Mueller et al. 2019): targets y (1 - eps) + eps / 2."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    targets = labels.to(logits.dtype).reshape(logits.shape)
    targets = targets * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(logits, targets)


def _check_same_shape(prediction: Tensor, target: Tensor, name: str) -> None:
    if prediction.shape != target.shape:
        raise ValueError(f"{name} prediction has shape {tuple(prediction.shape)} but its target has "
                         f"{tuple(target.shape)}: generate targets at image_size / heatmap_stride")


class LAANetLoss(nn.Module):
    """L = L_BCE + lambda1 L_H + lambda2 L_C (Eq. 8); branches that are absent from ``outputs`` are skipped.

    Args:
        lambda1: weight of the heatmap loss (10 in the paper).
        lambda2: weight of the self-consistency loss (100 in the paper).
        heatmap_loss: ``paper`` (Eq. 5-6) or ``cornernet`` (the official code's normalised variant).
        focal_gamma: gamma of Eq. 5 (``paper``).
        cornernet_alpha: alpha of the CornerNet variant.
        cornernet_beta: beta of the CornerNet variant.
        label_smoothing: epsilon of the classification targets.
    """

    def __init__(self, lambda1: float = 10.0, lambda2: float = 100.0, heatmap_loss: HeatmapLossVariant = "paper",
                 focal_gamma: float = 2.0, cornernet_alpha: float = 2.0, cornernet_beta: float = 4.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if heatmap_loss not in ("paper", "cornernet"):
            raise ValueError(f"heatmap_loss must be 'paper' or 'cornernet', got {heatmap_loss!r}")
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.heatmap_loss = heatmap_loss
        self.focal_gamma = focal_gamma
        self.cornernet_alpha = cornernet_alpha
        self.cornernet_beta = cornernet_beta
        self.label_smoothing = label_smoothing

    def heatmap(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.heatmap_loss == "paper":
            return heatmap_focal_loss(logits, target, gamma=self.focal_gamma)
        return cornernet_focal_loss(logits, target, alpha=self.cornernet_alpha, beta=self.cornernet_beta)

    def forward(self, outputs: dict[str, Tensor], labels: Tensor, heatmap: Tensor | None = None,
                consistency: Tensor | None = None) -> dict[str, Tensor]:
        """Loss terms: ``loss`` (Eq. 8) and the unweighted ``bce``, ``heatmap``, ``consistency`` present."""
        terms = {"bce": smoothed_bce_with_logits(outputs["logit"].float(), labels, self.label_smoothing)}
        total = terms["bce"]
        if "heatmap" in outputs:
            if heatmap is None:
                raise KeyError("heatmap")
            terms["heatmap"] = self.heatmap(outputs["heatmap"].float(), heatmap.float())
            total = total + self.lambda1 * terms["heatmap"]
        if "consistency" in outputs:
            if consistency is None:
                raise KeyError("consistency")
            terms["consistency"] = self_consistency_loss(outputs["consistency"].float(), consistency.float())
            total = total + self.lambda2 * terms["consistency"]
        return {"loss": total, **terms}
