"""LAA-Net losses (seed 003, Sec. 3.1.2): heatmap focal loss (Eq. 5-6), self-consistency BCE, classification BCE
with label smoothing, and their weighted sum (Eq. 8).

Three heatmap losses (``LAANetLoss(heatmap_loss=...)``):

* ``released`` (default): the loss the released code trains with (``losses/losses.py: _neg_loss``), a CornerNet
  focal loss whose positive term carries the released "label smoothing" weight (1 - eps) + eps * noise
  (eps = 0.35, noise = 0.2: 0.72), with probabilities clamped to [1e-4, 1 - 1e-4] (saturated pixels get no
  gradient) and the sum divided by the number of positives of the batch (h = 1 exactly);
* ``paper``: Eq. 5-6 read literally: every pixel with h < 1 (the Gaussian flanks of Eq. 4 included) is a plain
  negative, per-map sum, batch mean;
* ``cornernet``: CornerNet's loss (Law & Deng 2018) computed from logits without clamping or positive weight.

The released and CornerNet losses down-weight negatives near a peak by (1 - h)^4, so the Gaussian radius of Eq. 4
reaches training; Eq. 6 read literally ignores it.

The paper/CornerNet functions take logits and use log-sigmoid (no clamping needed); the released one clamps as
the released code does.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightning_dfd.batch import CONSISTENCY, HEATMAP, REAL

HeatmapLossVariant = Literal["released", "paper", "cornernet"]
HEATMAP_LOSSES: tuple[str, ...] = ("released", "paper", "cornernet")
RELEASED_PROBABILITY_CLAMP = 1e-4  # _sigmoid() of the released losses.py


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


def released_focal_loss(logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0,
                        positive_epsilon: float = 0.35, positive_noise: float = 0.2,
                        clamp: float = RELEASED_PROBABILITY_CLAMP) -> Tensor:
    """The released code's heatmap loss (CornerNet focal loss with its positive weight and clamping).

    With p = clamp(sigmoid(logits), clamp, 1 - clamp) and w = (1 - positive_epsilon) + positive_epsilon *
    positive_noise (0.72 with the released 0.35 and 0.2):

        L = -1/N_pos sum { w (1 - p)^alpha log p                  if h = 1 (exactly)
                         { (1 - h)^beta p^alpha log(1 - p)         if h < 1

    N_pos is the number of positives in the whole batch; with none, the negative sum itself is returned. The
    weight lambda1 of Eq. 8 is applied by :class:`LAANetLoss` (the released function multiplies by it inside).

    Args:
        logits: (B, 1, h, w) predicted heatmap logits.
        target: (B, 1, h, w) ground-truth heatmap H of Eq. 4 (1 exactly at the vulnerable points).
        alpha: focusing exponent on the prediction.
        beta: exponent of the (1 - h) down-weighting of negatives near a peak.
        positive_epsilon: the released "label smoothing" epsilon of the positive term.
        positive_noise: the released noise share of the positive term.
        clamp: probabilities are clamped to [clamp, 1 - clamp] (0: no clamping).
    """
    _check_same_shape(logits, target, "heatmap")
    positive = target == 1.0
    prob = torch.sigmoid(logits)
    if clamp > 0:
        prob = prob.clamp(min=clamp, max=1.0 - clamp)
    weight = (1.0 - positive_epsilon) + positive_epsilon * positive_noise
    positive_term = weight * torch.log(prob) * (1.0 - prob).pow(alpha)
    negative_term = torch.log(1.0 - prob) * prob.pow(alpha) * (1.0 - target).pow(beta)
    total = -(torch.where(positive, positive_term, negative_term)).sum()
    return total / positive.sum().clamp(min=1).to(total.dtype)


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
        lambda1: weight of the heatmap loss (10 in the paper and the released BI config, 100 in the released SBI
            config).
        lambda2: weight of the self-consistency loss (100 in the paper).
        heatmap_loss: ``released`` (the released code's loss, default), ``paper`` (Eq. 5-6 literally) or
            ``cornernet`` (see the module docstring).
        focal_gamma: gamma of Eq. 5 (``paper``).
        cornernet_alpha: alpha of the ``released`` and ``cornernet`` losses.
        cornernet_beta: beta of the ``released`` and ``cornernet`` losses.
        positive_epsilon: epsilon of the released positive weight (``released``).
        positive_noise: noise share of the released positive weight (``released``).
        real_consistency_target: value of the self-consistency target C on real images (label 0): 0 in the
            released code (default), 1 in the paper (Eq. 7 with B = 0). Replaces whatever the targets transform
            put there.
        label_smoothing: epsilon of the classification targets (0 in the released code).
    """

    def __init__(self, lambda1: float = 10.0, lambda2: float = 100.0, heatmap_loss: HeatmapLossVariant = "released",
                 focal_gamma: float = 2.0, cornernet_alpha: float = 2.0, cornernet_beta: float = 4.0,
                 positive_epsilon: float = 0.35, positive_noise: float = 0.2, real_consistency_target: float = 0.0,
                 label_smoothing: float = 0.0) -> None:
        super().__init__()
        if heatmap_loss not in HEATMAP_LOSSES:
            raise ValueError(f"heatmap_loss must be one of {HEATMAP_LOSSES}, got {heatmap_loss!r}")
        if not 0.0 <= real_consistency_target <= 1.0:
            raise ValueError(f"real_consistency_target must lie in [0, 1] (0 released, 1 paper), got "
                             f"{real_consistency_target}")
        self.lambda1 = lambda1
        self.lambda2 = lambda2
        self.heatmap_loss = heatmap_loss
        self.focal_gamma = focal_gamma
        self.cornernet_alpha = cornernet_alpha
        self.cornernet_beta = cornernet_beta
        self.positive_epsilon = positive_epsilon
        self.positive_noise = positive_noise
        self.real_consistency_target = real_consistency_target
        self.label_smoothing = label_smoothing

    def heatmap(self, logits: Tensor, target: Tensor) -> Tensor:
        """L_H with the configured variant."""
        if self.heatmap_loss == "paper":
            return heatmap_focal_loss(logits, target, gamma=self.focal_gamma)
        if self.heatmap_loss == "cornernet":
            return cornernet_focal_loss(logits, target, alpha=self.cornernet_alpha, beta=self.cornernet_beta)
        return released_focal_loss(logits, target, alpha=self.cornernet_alpha, beta=self.cornernet_beta,
                                   positive_epsilon=self.positive_epsilon, positive_noise=self.positive_noise)

    def consistency_target(self, target: Tensor, labels: Tensor) -> Tensor:
        """C with the real images' maps set to ``real_consistency_target``."""
        real = (labels.reshape(-1) == REAL).to(target.device).view(-1, *([1] * (target.dim() - 1)))
        return torch.where(real, torch.full_like(target, self.real_consistency_target), target)

    def forward(self, outputs: dict[str, Tensor], labels: Tensor, heatmap: Tensor | None = None,
                consistency: Tensor | None = None) -> dict[str, Tensor]:
        """Loss terms: ``loss`` (Eq. 8) and the unweighted ``bce``, ``heatmap``, ``consistency`` present."""
        terms = {"bce": smoothed_bce_with_logits(outputs["logit"].float(), labels, self.label_smoothing)}
        total = terms["bce"]
        if HEATMAP in outputs:
            if heatmap is None:
                raise KeyError(f"the heatmap branch is on but the batch has no '{HEATMAP}' target: add the LAA-Net "
                               f"targets transform to the data, or set use_heatmap: false")
            terms[HEATMAP] = self.heatmap(outputs[HEATMAP].float(), heatmap.float())
            total = total + self.lambda1 * terms[HEATMAP]
        if CONSISTENCY in outputs:
            if consistency is None:
                raise KeyError(f"the self-consistency branch is on but the batch has no '{CONSISTENCY}' target: add "
                               f"the LAA-Net targets transform to the data, or set use_consistency: false")
            target = self.consistency_target(consistency.float(), labels)
            terms[CONSISTENCY] = self_consistency_loss(outputs[CONSISTENCY].float(), target)
            total = total + self.lambda2 * terms[CONSISTENCY]
        return {"loss": total, **terms}
