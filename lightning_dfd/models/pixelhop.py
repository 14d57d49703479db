"""PixelHop++ with the channel-wise (c/w) Saab transform, and the spatial PCA of DefakeHop (seed 000, Sec. 3.2-3.3).

Everything here is *fitted* (closed form, no gradients): :func:`saab_fit` is the Saab transform of one set of
flattened 3x3 windows (Sec. 3.2.1: a constant DC kernel, then PCA of the AC part); :class:`PixelHopPP` cascades
three hops (3x3 windows, stride 1, no padding, (2x2)->(1x1) max pooling with ceil: 32->30->15, 15->13->7,
7->5->3, so 225 / 49 / 9 positions per channel), channel-wise from hop 2 on (every channel passed on is
transformed on its own, 9-D windows; Sec. 4.2); :class:`SpatialPCA` reduces each hop's spatial positions (Sec. 3.3,
"spatial dimension reduction"; Table 4: 225->45, 49->25, 9->5). Fitting runs in torch float64 (batched
covariances, on the GPU when the module is there); the transforms are convolutions. Fitted tensors are buffers
whose shapes are only known after fitting, so they are resized when a checkpoint is loaded
(:class:`FittedBuffers`).

Channel roles (PixelHop++, Fig. 3): a channel's energy is its normalised eigenvalue times its parent's energy;
below ``keep_threshold`` it is discarded, between the two thresholds it is kept (a leaf), at or above
``split_threshold`` it is kept and passed on to the next hop; at most ``max_channels`` per hop (the most energetic).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

KEPT, PASSED = 1, 2  # channel roles (discarded channels are not stored)


class FittedBuffers(nn.Module):
    """A module whose buffers get their shapes from fitting: loading a state dict resizes them first."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        for name, value in list(self._buffers.items()):
            key = prefix + name
            if key in state_dict and value is not None and state_dict[key].shape != value.shape:
                self._buffers[name] = torch.empty_like(state_dict[key], device=value.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


def saab_fit(windows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Saab transform of flattened windows ``(..., n, D)`` (a batch of independent sets allowed), float64.

    Returns ``kernels (..., D, D)`` (row 0 the DC kernel ``1/sqrt(D)``, rows 1.. the principal directions of the
    AC part by decreasing eigenvalue), ``energies (..., D)`` (variance of each kernel's response over the total
    variance, so they sum to 1) and the window mean ``(..., D)`` (responses are ``(x - mean) @ kernels.T``).
    """
    x = windows.to(torch.float64)
    d = x.shape[-1]
    mean = x.mean(dim=-2)
    centred = x - mean.unsqueeze(-2)
    cov = centred.transpose(-1, -2) @ centred / max(x.shape[-2] - 1, 1)
    dc = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64, device=x.device)
    proj = torch.eye(d, dtype=torch.float64, device=x.device) - torch.outer(dc, dc)  # onto the AC subspace
    ac_cov = proj @ cov @ proj
    eigvals, eigvecs = torch.linalg.eigh(ac_cov)  # ascending
    eigvals = eigvals.flip(-1)[..., : d - 1].clamp_min(0)
    ac = eigvecs.flip(-1)[..., : d - 1].transpose(-1, -2)  # (..., D-1, D), rows = kernels
    dc_var = (dc @ cov @ dc).unsqueeze(-1)
    variances = torch.cat([dc_var, eigvals], dim=-1)
    total = cov.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True).clamp_min(1e-300)
    kernels = torch.cat([dc.expand(*ac.shape[:-2], 1, d), ac], dim=-2)
    return kernels, variances / total, mean


def _windows(maps: Tensor, size: int, max_windows: int | None, generator: torch.Generator | None) -> Tensor:
    """All ``size x size`` windows (stride 1, no padding) of ``maps (N, C, H, W)`` as ``(n, C*size*size)``,
    optionally a seeded random subset of ``max_windows`` of them (for the covariance only)."""
    n, c, h, w = maps.shape
    cols = F.unfold(maps, size)  # (N, C*k*k, L)
    cols = cols.transpose(1, 2).reshape(-1, c * size * size)
    if max_windows is not None and len(cols) > max_windows:
        idx = torch.randperm(len(cols), generator=generator)[:max_windows].to(cols.device)
        cols = cols[idx]
    return cols


def pool(maps: Tensor) -> Tensor:
    """(2x2)->(1x1) max pooling with ceil (30->15, 13->7, 5->3)."""
    return F.max_pool2d(maps, kernel_size=2, stride=2, ceil_mode=True)


class PixelHopPP(FittedBuffers):
    """Three (configurable) PixelHop++ hops with c/w Saab kernels as buffers (seed 000, Sec. 3.2, Fig. 3).

    Hop 1 transforms the ``in_chans``-channel window (27-D for RGB) jointly; each later hop transforms every
    channel passed on by the previous hop on its own (9-D windows) and selects its channels across all those
    c/w transforms (Sec. 4.2). :meth:`forward` returns, per hop, the pooled responses of its kept + passed-on
    channels ``(N, K_h, s_h, s_h)``.

    Args:
        num_hops: hops in cascade (3 in the paper).
        kernel_size: window side (3).
        split_threshold: energy at or above which a channel is passed on to the next hop (released code 0.01).
        keep_threshold: energy below which a channel is discarded (released code 0.001).
        max_channels: at most this many channels per hop (10, Sec. 4.2).
        max_fit_windows: windows drawn (seeded) per c/w transform to estimate its covariance; ``None`` = all.
        seed: seed of that draw.
    """

    def __init__(self, num_hops: int = 3, kernel_size: int = 3, split_threshold: float = 0.01,
                 keep_threshold: float = 0.001, max_channels: int = 10, max_fit_windows: int | None = 200_000,
                 seed: int = 0) -> None:
        super().__init__()
        self.num_hops = num_hops
        self.kernel_size = kernel_size
        self.split_threshold = split_threshold
        self.keep_threshold = keep_threshold
        self.max_channels = max_channels
        self.max_fit_windows = max_fit_windows
        self.seed = seed
        for hop in range(num_hops):
            # weight (K, Cin, k, k) with Cin = in_chans at hop 0 else 1; bias = -kernel . mean; parent index into
            # the previous hop's channels (-1 at hop 0); energy; role (KEPT / PASSED)
            self.register_buffer(f"weight{hop}", torch.empty(0, 1, kernel_size, kernel_size, dtype=torch.float64))
            self.register_buffer(f"bias{hop}", torch.empty(0, dtype=torch.float64))
            self.register_buffer(f"parent{hop}", torch.empty(0, dtype=torch.long))
            self.register_buffer(f"energy{hop}", torch.empty(0, dtype=torch.float64))
            self.register_buffer(f"role{hop}", torch.empty(0, dtype=torch.long))

    @property
    def fitted(self) -> bool:
        return self.weight0.numel() > 0

    def hop_buffers(self, hop: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return tuple(getattr(self, f"{name}{hop}") for name in ("weight", "bias", "parent", "energy", "role"))

    def _select(self, energies: Tensor) -> tuple[Tensor, Tensor]:
        """Indices (by decreasing energy) of the kept + passed channels, at most ``max_channels``, and roles."""
        order = torch.argsort(energies, descending=True)
        order = order[energies[order] >= self.keep_threshold][: self.max_channels]
        roles = torch.where(energies[order] >= self.split_threshold, PASSED, KEPT)
        return order, roles

    @torch.no_grad()
    def fit(self, images: Tensor, chunk: int = 4096) -> PixelHopPP:
        """Fit every hop on ``images (N, C, H, W)`` (float64 on this module's device)."""
        generator = torch.Generator().manual_seed(self.seed)
        device = self.weight0.device
        k = self.kernel_size
        parent_energy = torch.ones(1, dtype=torch.float64, device=device)
        maps = images.to(device=device, dtype=torch.float64)
        for hop in range(self.num_hops):
            if hop == 0:
                sets = _windows(maps, k, self.max_fit_windows, generator).unsqueeze(0)  # (1, n, C*k*k)
                parents = torch.zeros(1, dtype=torch.long, device=device)
            else:
                prev_role = getattr(self, f"role{hop - 1}")
                parents = torch.nonzero(prev_role == PASSED).reshape(-1)
                if len(parents) == 0:
                    raise ValueError(f"PixelHop++ hop {hop + 1}: no channel of hop {hop} reached split_threshold = "
                                     f"{self.split_threshold}; lower it or use fewer hops")
                sets = torch.stack([_windows(maps[:, int(p): int(p) + 1], k, self.max_fit_windows, generator)
                                    for p in parents])  # (P, n, k*k)
            kernels, energies, mean = saab_fit(sets)  # (P, D, D), (P, D), (P, D)
            energies = energies * parent_energy[parents].unsqueeze(-1)
            flat = energies.reshape(-1)
            order, roles = self._select(flat)
            which_set, which_kernel = order // kernels.shape[-1], order % kernels.shape[-1]
            weight = kernels[which_set, which_kernel]  # (K, D)
            cin = maps.shape[1] if hop == 0 else 1
            setattr(self, f"weight{hop}", weight.reshape(-1, cin, k, k).contiguous())
            setattr(self, f"bias{hop}", -(weight * mean[which_set]).sum(-1))
            setattr(self, f"parent{hop}", parents[which_set] if hop else torch.full_like(order, -1))
            setattr(self, f"energy{hop}", flat[order])
            setattr(self, f"role{hop}", roles)
            parent_energy = flat[order]
            if hop + 1 < self.num_hops:
                maps = torch.cat([self._hop(maps[i: i + chunk], hop) for i in range(0, len(maps), chunk)])
        return self

    def _hop(self, maps: Tensor, hop: int) -> Tensor:
        """Pooled responses of hop ``hop`` given the previous hop's output (or the image at hop 0)."""
        weight, bias, parent, _, _ = self.hop_buffers(hop)
        weight, bias = weight.to(maps.dtype), bias.to(maps.dtype)
        if hop == 0:
            return pool(F.conv2d(maps, weight, bias))
        return pool(F.conv2d(maps[:, parent], weight, bias, groups=len(parent)))  # one c/w kernel per child

    def forward(self, images: Tensor) -> list[Tensor]:
        """Per hop, the pooled responses ``(N, K_h, s_h, s_h)`` of its kept + passed channels (in float64)."""
        if not self.fitted:
            raise RuntimeError("PixelHopPP is not fitted: call fit(images) first")
        maps = images.to(torch.float64)
        outputs = []
        for hop in range(self.num_hops):
            maps = self._hop(maps, hop)
            outputs.append(maps)
        return outputs

    def kernel_parameters(self) -> list[int]:
        """Kernel entries per hop (Table 4: 27 x 10, 9 x 10, 9 x 10)."""
        return [int(getattr(self, f"weight{hop}").numel()) for hop in range(self.num_hops)]


class SpatialPCA(FittedBuffers):
    """PCA over the spatial positions of one hop, shared by all its channels (seed 000, Sec. 3.3).

    Args:
        components: a value above 1 keeps that many components (Table 4: 45 / 25 / 5); a value in (0, 1] keeps the
            fewest components whose explained variance reaches that fraction (Sec. 3.3: "about 90 % of the
            energy"; the released code uses 0.95).
    """

    def __init__(self, components: float | int = 0.9) -> None:
        super().__init__()
        self.components = components
        self.register_buffer("mean", torch.empty(0, dtype=torch.float64))
        self.register_buffer("basis", torch.empty(0, 0, dtype=torch.float64))  # (n_components, positions)

    @torch.no_grad()
    def fit(self, responses: Tensor) -> SpatialPCA:
        """Fit on ``responses (N, K, s, s)``: every channel of every sample is one observation of ``s*s`` values."""
        x = responses.reshape(-1, responses.shape[-2] * responses.shape[-1]).to(torch.float64)
        mean = x.mean(0)
        centred = x - mean
        cov = centred.T @ centred / max(len(x) - 1, 1)
        eigvals, eigvecs = torch.linalg.eigh(cov)
        eigvals, eigvecs = eigvals.flip(0).clamp_min(0), eigvecs.flip(1)
        if self.components <= 1:  # an energy fraction
            ratio = torch.cumsum(eigvals, 0) / eigvals.sum().clamp_min(1e-300)
            n = int(torch.searchsorted(ratio, torch.tensor(float(self.components), dtype=ratio.dtype,
                                                           device=ratio.device) - 1e-12)) + 1
        else:
            n = int(self.components)
        n = max(1, min(n, x.shape[1]))
        self.mean = mean
        self.basis = eigvecs[:, :n].T.contiguous()
        return self

    def forward(self, responses: Tensor) -> Tensor:
        """``(N, K, s, s)`` -> ``(N, K, n_components)``."""
        x = responses.reshape(*responses.shape[:2], -1).to(torch.float64)
        return (x - self.mean) @ self.basis.T


def pooled_sizes(input_size: int = 32, num_hops: int = 3, kernel_size: int = 3) -> list[int]:
    """Side of each hop's pooled output (32 -> 15, 7, 3)."""
    sizes, size = [], input_size
    for _ in range(num_hops):
        size = math.ceil((size - kernel_size + 1) / 2)
        sizes.append(size)
    return sizes


def fixed_or_energy(components: Sequence[float | int], num_hops: int) -> list[float | int]:
    """One spatial-PCA setting per hop (a single value is repeated)."""
    values = list(components)
    if len(values) == 1:
        values = values * num_hops
    if len(values) != num_hops:
        raise ValueError(f"spatial_components has {len(values)} values for {num_hops} hops")
    return values
