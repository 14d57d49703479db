"""Deep Laplacian of Gaussian layer of the two-branch recurrent network (Masi et al., ECCV 2020; seed 004, Sec. 3.2).

Eq. 1: ``x' = w_1x1( x - up(down(G * x)) )`` over ``S`` scales. For each scale ``s`` the input feature map ``x``
(``K`` planes) is blurred by a fixed 2-D Gaussian ``G_s``, subsampled by ``f_s``, bilinearly upsampled back to the
input size and subtracted from ``x``: a band of a Laplacian pyramid (Burt & Adelson, the paper's [10]) that
removes the low-frequency face content and keeps edges and artefacts. The ``S`` bands are concatenated
(``S * K`` planes) and a learnable point-wise convolution maps them to ``K'`` planes (``K -> SK -> K'``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def gaussian_kernel_2d(sigma: float, size: int | None = None) -> Tensor:
    """Normalised 2-D Gaussian ``(size, size)`` (sum 1); ``size`` defaults to ``2 * ceil(3 sigma) + 1``."""
    if sigma <= 0:
        raise ValueError(f"Gaussian sigma must be > 0, got {sigma}")
    size = 2 * math.ceil(3 * sigma) + 1 if size is None else int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"Gaussian kernel size must be odd and >= 1, got {size}")
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return torch.outer(g, g).float()


class DeepLoG(nn.Module):
    """Multi-scale Laplacian-of-Gaussian bottleneck of Eq. 1 (fixed Gaussians, learnable 1x1).

    The paper gives ``S = 3`` but no kernel sizes, sigmas or scale factors. Defaults: the levels of a Laplacian
    pyramid (Burt & Adelson): scale ``s`` blurs with ``sigma_s = sigmas[s]`` (1, 2, 4: the pyramid's generating
    kernel is close to a Gaussian of sigma 1, and each level doubles it) and subsamples by ``down_factors[s]``
    (2, 4, 8: one octave per level), so the three bands cover three octaves of detail; kernels span +-3 sigma
    (``2 ceil(3 sigma) + 1`` taps) so the blur is not truncated. Borders are replicated, so a constant map gives
    exactly zero band response. The 1x1 is initialised to the mean of the ``S`` bands of each channel when
    ``K' = K`` (a pretrained next layer first sees an all-band LoG response of the features it was trained on).

    Args:
        in_channels: ``K``, planes of the input feature map.
        out_channels: ``K'``, planes after the 1x1 (default ``K``).
        sigmas: Gaussian sigma of each scale; ``S = len(sigmas)``.
        down_factors: subsampling factor of each scale (same length as ``sigmas``).
        kernel_size: odd Gaussian size for every scale (default ``2 ceil(3 sigma) + 1`` per scale).
        bias: bias of the 1x1.
    """

    def __init__(self, in_channels: int, out_channels: int | None = None,
                 sigmas: Sequence[float] = (1.0, 2.0, 4.0), down_factors: Sequence[int] = (2, 4, 8),
                 kernel_size: int | None = None, bias: bool = False) -> None:
        super().__init__()
        sigmas, down_factors = [float(s) for s in sigmas], [int(f) for f in down_factors]
        if not sigmas or len(sigmas) != len(down_factors):
            raise ValueError(f"DeepLoG needs one down factor per sigma (S >= 1), got sigmas {sigmas} and "
                             f"down_factors {down_factors}")
        if any(f < 1 for f in down_factors):
            raise ValueError(f"DeepLoG down_factors must be >= 1, got {down_factors}")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels or in_channels)
        self.down_factors = down_factors
        self.num_scales = len(sigmas)
        for s, sigma in enumerate(sigmas):  # fixed, non-learnable w_N2D: buffers, not parameters
            self.register_buffer(f"gaussian_{s}", gaussian_kernel_2d(sigma, kernel_size), persistent=False)
        self.pointwise = nn.Conv2d(self.num_scales * self.in_channels, self.out_channels, 1, bias=bias)
        if self.out_channels == self.in_channels:
            with torch.no_grad():
                weight = torch.zeros_like(self.pointwise.weight)
                for s in range(self.num_scales):
                    idx = torch.arange(self.in_channels)
                    weight[idx, s * self.in_channels + idx, 0, 0] = 1.0 / self.num_scales
                self.pointwise.weight.copy_(weight)

    def gaussian(self, scale: int) -> Tensor:
        return getattr(self, f"gaussian_{scale}")

    def band(self, x: Tensor, scale: int) -> Tensor:
        """``x - up(down(G_s * x))`` for one scale, shape of ``x``."""
        kernel = self.gaussian(scale).to(x.dtype)
        pad = kernel.shape[-1] // 2
        channels = x.shape[1]
        weight = kernel.expand(channels, 1, *kernel.shape)
        blurred = F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="replicate"), weight, groups=channels)
        factor = self.down_factors[scale]
        down = blurred[..., ::factor, ::factor]
        up = F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return x - up

    def band_pass(self, x: Tensor) -> Tensor:
        """The ``S`` bands concatenated on channels, ``(B, S K, H, W)`` (Eq. 1 before ``w_1x1``)."""
        if x.shape[1] != self.in_channels:
            raise ValueError(f"DeepLoG expects {self.in_channels} input planes, got {x.shape[1]}")
        return torch.cat([self.band(x, s) for s in range(self.num_scales)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.pointwise(self.band_pass(x))
