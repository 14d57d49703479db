"""Enhanced Feature Pyramid Network (E-FPN) of LAA-Net (seed 003, Sec. 3.2, Eq. 9), and the plain-FPN variant.

The decoder walks from the top level F(N) down to the output level, one pyramid level per step:

    E(l)  = T(f(F'(l+1)))                              with F'(N) = F(N)
    F'(l) = F(l) * (1 - sigmoid(E(l)))^gamma_w  (+)  E(l)        (Eq. 9, (+) = channel concatenation)

* ``f``: 3x3 convolution + BatchNorm + ReLU reducing the channels to n(l), those of F(l);
* ``T``: a stride-2 4x4 transposed convolution + BatchNorm per factor 2 between D(l+1) and D(l), or the
  identity when both levels share a resolution (EfficientNet's F(6) head and F(5));

so E(l) has the shape of F(l). The gate (1 - sigmoid(E))^gamma_w keeps in F(l) what the upper level did not
already explain (the paper's redundancy argument); gamma_w = 1 in all the paper's experiments.

``fpn_type="fpn"`` is the traditional FPN of Table 4: the same E(l), concatenated with F(l) without the gate,
F'(l) = F(l) (+) ReLU(E(l)). A level that is not fused (not in the level set, or below it down to the output
stride) just continues the decoder: F'(l) = ReLU(E(l)).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

FPNType = Literal["efpn", "fpn", "none"]


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    """The reduction ``f`` of Eq. 9: 3x3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def upsample_x2(channels: int) -> nn.Sequential:
    """One factor 2 of the transposed convolution ``T`` of Eq. 9 (4x4, stride 2: D -> 2D), then BatchNorm."""
    return nn.Sequential(
        nn.ConvTranspose2d(channels, channels, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(channels),
    )


def efpn_gate(e: Tensor, gamma_w: float = 1.0) -> Tensor:
    """(1 - sigmoid(E))^gamma_w of Eq. 9, computed as sigmoid(-E)^gamma_w (the same value, no cancellation)."""
    gate = torch.sigmoid(-e)
    return gate if gamma_w == 1.0 else gate.pow(gamma_w)


class PyramidStep(nn.Module):
    """One level l of the decoder: E(l) = T(f(F'(l+1))) and its merge with F(l)."""

    def __init__(self, in_channels: int, level_channels: int, upsample_factor: int, fuse: bool,
                 fpn_type: FPNType, gamma_w: float) -> None:
        super().__init__()
        if upsample_factor < 1 or upsample_factor & (upsample_factor - 1):
            raise ValueError(f"consecutive pyramid levels must differ in resolution by a power of 2, got a factor "
                             f"{upsample_factor}")
        self.reduce = conv_bn_relu(in_channels, level_channels)
        self.upsample = nn.Sequential(*[upsample_x2(level_channels)
                                        for _ in range(int(math.log2(upsample_factor)))])
        self.fuse = fuse
        self.fpn_type = fpn_type
        self.gamma_w = gamma_w
        self.level_channels = level_channels
        self.out_channels = 2 * level_channels if fuse else level_channels

    def forward(self, upper: Tensor, lateral: Tensor | None) -> tuple[Tensor, Tensor]:
        """Return (F'(l), E(l)) from F'(l+1) and F(l) (``lateral``, only read when the level is fused)."""
        e = self.upsample(self.reduce(upper))
        if not self.fuse:
            return torch.relu(e), e
        if lateral is None:
            raise ValueError("a fused pyramid level needs its backbone feature map F(l)")
        if lateral.shape != e.shape:
            raise ValueError(f"E(l) has shape {tuple(e.shape)} but F(l) has {tuple(lateral.shape)}: the input "
                             f"size must be divisible by the backbone's largest stride")
        if self.fpn_type == "efpn":
            return torch.cat([lateral * efpn_gate(e, self.gamma_w), e], dim=1), e
        return torch.cat([lateral, torch.relu(e)], dim=1), e


class EnhancedFPN(nn.Module):
    """E-FPN (Eq. 9) or plain FPN decoder over backbone levels ordered from the top F(N) downwards.

    Args:
        channels: n(l) of each level, top first: ``channels[0]`` is F(N), ``channels[i]`` the i-th step's level.
        reductions: stride of each level relative to the input, same order (non-increasing).
        fused: for each step i >= 1, whether F(l) is merged (``fused[0]``, the top, is ignored).
        fpn_type: ``efpn`` (gated, Eq. 9), ``fpn`` (plain concatenation) or ``none`` (no merge at all).
        gamma_w: exponent of the gate (1 in the paper).
        widths: channels of E(l) per level (same order; ``widths[0]`` ignored). Default ``channels``; a fused level
            must keep n(l) (E(l) has the shape of F(l)), an unfused one may differ.
    """

    def __init__(self, channels: Sequence[int], reductions: Sequence[int], fused: Sequence[bool],
                 fpn_type: FPNType = "efpn", gamma_w: float = 1.0, widths: Sequence[int] | None = None) -> None:
        super().__init__()
        if not (len(channels) == len(reductions) == len(fused)) or len(channels) < 1:
            raise ValueError("channels, reductions and fused must have the same non-zero length")
        if fpn_type not in ("efpn", "fpn", "none"):
            raise ValueError(f"fpn_type must be 'efpn', 'fpn' or 'none', got {fpn_type!r}")
        self.fpn_type = fpn_type
        self.fused = tuple(bool(f) and fpn_type != "none" and i > 0 for i, f in enumerate(fused))
        widths = list(channels) if widths is None else list(widths)
        if len(widths) != len(channels):
            raise ValueError("widths must have one entry per level")
        for i in range(1, len(channels)):
            if self.fused[i] and widths[i] != channels[i]:
                raise ValueError(f"fused level {i} must keep its width {channels[i]} (E(l) has the shape of F(l)), "
                                 f"got {widths[i]}")
        steps = []
        in_channels = channels[0]
        for i in range(1, len(channels)):
            if reductions[i - 1] % reductions[i]:
                raise ValueError(f"level strides must be non-increasing multiples, got {list(reductions)}")
            step = PyramidStep(in_channels, widths[i], reductions[i - 1] // reductions[i], self.fused[i],
                               fpn_type, gamma_w)
            steps.append(step)
            in_channels = step.out_channels
        self.steps = nn.ModuleList(steps)
        self.out_channels = in_channels
        self.out_reduction = reductions[-1]

    def forward(self, features: Sequence[Tensor | None], return_intermediates: bool = False):
        """Decode ``features`` (top first, one per level; unfused levels may be None).

        Returns F' at the output level, or ``(F', [{"E": E(l), "F": F(l), "out": F'(l)}, ...])`` per step when
        ``return_intermediates`` is set (used by tests and attention visualisations).
        """
        if len(features) != len(self.steps) + 1:
            raise ValueError(f"expected {len(self.steps) + 1} feature maps (top first), got {len(features)}")
        x = features[0]
        intermediates = []
        for step, lateral in zip(self.steps, features[1:]):
            x, e = step(x, lateral if step.fuse else None)
            if return_intermediates:
                intermediates.append({"E": e, "F": lateral, "out": x})
        return (x, intermediates) if return_intermediates else x
