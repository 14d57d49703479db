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
When no channel of a hop reaches ``split_threshold``, its most energetic one is passed on (every hop exists).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
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
    AC part by decreasing eigenvalue, each signed so that its largest-magnitude entry is positive), ``energies
    (..., D)`` (variance of each kernel's response over the total variance, so they sum to 1) and the window mean
    ``(..., D)`` (responses are ``(x - mean) @ kernels.T``).
    """
    x = windows.to(torch.float64)
    d = x.shape[-1]
    n = x.shape[-2]
    mean = x.mean(dim=-2)
    # (X^T X - n mean mean^T) / (n - 1): no centred copy of the windows (float64 keeps the difference exact enough)
    cov = (x.transpose(-1, -2) @ x - n * mean.unsqueeze(-1) * mean.unsqueeze(-2)) / max(n - 1, 1)
    dc = torch.full((d,), 1.0 / math.sqrt(d), dtype=torch.float64, device=x.device)
    proj = torch.eye(d, dtype=torch.float64, device=x.device) - torch.outer(dc, dc)  # onto the AC subspace
    ac_cov = proj @ cov @ proj
    eigvals, eigvecs = torch.linalg.eigh(ac_cov)  # ascending
    eigvals = eigvals.flip(-1)[..., : d - 1].clamp_min(0)
    ac = eigvecs.flip(-1)[..., : d - 1].transpose(-1, -2)  # (..., D-1, D), rows = kernels
    # deterministic signs (max pooling is not sign-symmetric): each kernel's largest-magnitude entry is positive
    peak = ac.gather(-1, ac.abs().argmax(-1, keepdim=True))
    ac = ac * torch.where(peak < 0, -1.0, 1.0).to(ac.dtype)
    dc_var = (dc @ cov @ dc).unsqueeze(-1)
    variances = torch.cat([dc_var, eigvals], dim=-1)
    total = cov.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True).clamp_min(1e-300)
    kernels = torch.cat([dc.expand(*ac.shape[:-2], 1, d), ac], dim=-2)
    return kernels, variances / total, mean


def _windows(maps: Tensor, size: int, max_windows: int | None, generator: torch.Generator | None) -> Tensor:
    """All ``size x size`` windows (stride 1, no padding) of ``maps (N, C, H, W)`` as ``(n, C*size*size)``,
    optionally a seeded random subset of ``max_windows`` of them (for the covariance only), drawn from a seeded
    subset of the maps so that memory stays at about ``max_windows`` windows."""
    n, c, h, w = maps.shape
    per_map = (h - size + 1) * (w - size + 1)
    if max_windows is not None and n * per_map > max_windows:
        maps_needed = min(n, -(-max_windows // per_map) * 2)
        maps = maps[torch.randperm(n, generator=generator)[:maps_needed].to(maps.device)]
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

    def fit(self, images: Tensor, chunk: int = 4096) -> PixelHopPP:
        """Fit every hop on ``images (N, C, H, W)`` (float64 on this module's device)."""
        self.fit_transform(images, chunk)
        return self

    @torch.no_grad()
    def fit_transform(self, images: Tensor, chunk: int = 4096) -> list[Tensor]:
        """Fit every hop on ``images`` and return their pooled responses (what :meth:`forward` gives), computed
        once while fitting."""
        generator = torch.Generator().manual_seed(self.seed)
        device = self.weight0.device
        k = self.kernel_size
        parent_energy = torch.ones(1, dtype=torch.float64, device=device)
        maps = images.to(device=device, dtype=torch.float64)
        outputs: list[Tensor] = []
        for hop in range(self.num_hops):
            if hop == 0:
                sets = _windows(maps, k, self.max_fit_windows, generator).unsqueeze(0)  # (1, n, C*k*k)
                parents = torch.zeros(1, dtype=torch.long, device=device)
            else:
                prev_role = getattr(self, f"role{hop - 1}")
                parents = torch.nonzero(prev_role == PASSED).reshape(-1)
                if len(parents) == 0:  # nothing reached split_threshold: the most energetic channel goes on
                    parents = torch.argmax(getattr(self, f"energy{hop - 1}")).reshape(1)
                    prev_role[parents] = PASSED
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
            maps = torch.cat([self._hop(maps[i: i + chunk], hop) for i in range(0, len(maps), chunk)])
            outputs.append(maps)
        return outputs

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


# ---------------------------------------------------------------------------------------------------------------------
# DefakeHop: feature distillation (spatial PCA + channel-wise soft classifiers) and the ensembles (Sec. 3.3-3.4)
# ---------------------------------------------------------------------------------------------------------------------


def tree_parameters(max_depth: int) -> int:
    """Parameters of one full tree of ``max_depth`` as Sec. 4.2 counts them: 2 per intermediate node (dimension and
    threshold), 1 per leaf: ``2 (2^d - 1) + 2^d`` (depth 1: 4, depth 6: 190)."""
    return 2 * (2 ** max_depth - 1) + 2 ** max_depth


class BoosterStore(FittedBuffers):
    """XGBoost models kept as XGBoost's own UBJSON bytes in two buffers (no pickles): ``blob`` (uint8, all models
    back to back) and ``sizes`` (int64, bytes per model), so they travel in ``state_dict`` / checkpoints."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("blob", torch.empty(0, dtype=torch.uint8))
        self.register_buffer("sizes", torch.empty(0, dtype=torch.long))
        self._cache: list | None = None
        self._cache_key: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.sizes)

    def store(self, boosters: list) -> None:
        raws = [bytes(b.save_raw("ubj")) for b in boosters]
        self.blob = torch.frombuffer(bytearray(b"".join(raws)), dtype=torch.uint8).clone()
        self.sizes = torch.tensor([len(r) for r in raws], dtype=torch.long)
        self._cache = None

    def boosters(self) -> list:
        """The stored models as ``xgboost.Booster`` (decoded once per stored content)."""
        import xgboost as xgb

        key = (self.blob.data_ptr(), int(self.sizes.sum()) if len(self.sizes) else 0)
        if self._cache is None or self._cache_key != key:
            data = self.blob.cpu().numpy().tobytes()
            out, start = [], 0
            for size in self.sizes.tolist():
                booster = xgb.Booster()
                booster.load_model(bytearray(data[start: start + size]))
                out.append(booster)
                start += size
            self._cache, self._cache_key = out, key
        return self._cache


def booster_parameters(booster, max_depth: int) -> tuple[int, int]:
    """(upper bound as Sec. 4.2: the fitted booster's trees x full-tree parameters at ``max_depth`` (its training
    setting, which XGBoost's saved model does not keep), actual: 2 per split node + 1 per leaf of its trees)."""
    dump = booster.get_dump()
    leaves = sum(tree.count("leaf=") for tree in dump)
    splits = sum(tree.count("yes=") for tree in dump)
    return len(dump) * tree_parameters(max_depth), 2 * splits + leaves


def frame_windows(video: np.ndarray, frame: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """Row indices ``(N, len(offsets))`` of each sample's neighbours in its own video (Sec. 3.4, multi-frame
    ensemble): the frames of a video are ordered by frame index, offset ``o`` is the ``o``-th next sampled frame
    (previous when negative), clamped at the video's first / last frame."""
    order = np.lexsort((frame, video))
    sorted_video = video[order]
    starts = np.r_[0, np.flatnonzero(sorted_video[1:] != sorted_video[:-1]) + 1]
    ends = np.r_[starts[1:], len(order)]
    out = np.empty((len(video), len(offsets)), dtype=np.int64)
    for start, end in zip(starts, ends):
        rows = order[start:end]
        pos = np.arange(end - start)
        for j, off in enumerate(offsets):
            out[rows, j] = rows[np.clip(pos + off, 0, end - start - 1)]
    return out


class DefakeHopModel(FittedBuffers):
    """The fitted DefakeHop model of ``num_regions`` face regions (seed 000, Fig. 2).

    Per region: :class:`PixelHopPP` -> per hop a :class:`SpatialPCA` shared by its channels -> one XGBoost soft
    classifier per channel (max depth 1; Sec. 3.3) -> the channel probabilities of all hops. Regions are
    concatenated (multi-region ensemble), then the frames at ``frame_offsets`` around each frame (multi-frame
    ensemble, Sec. 3.4) and a final XGBoost (max depth 6) gives the frame's fake probability.

    The final classifier is trained on *out-of-fold* channel probabilities (``oof_folds`` folds grouped by video;
    the released code feeds it in-sample ones, which are optimistic on the training set).

    Args:
        num_regions: face regions (3: left eye, right eye, mouth).
        num_hops, split_threshold, keep_threshold, max_channels, max_fit_windows: :class:`PixelHopPP`.
        spatial_components: per hop, :class:`SpatialPCA`'s ``components`` (one value = all hops).
        channel_depth, channel_trees: the channel-wise XGBoosts (1, 100).
        final_depth, final_trees: the final XGBoost (6, 100).
        learning_rate: XGBoost's eta (0.3, its default, as the released code).
        frame_offsets: frames of the multi-frame ensemble relative to the current one ([-3..3] as Sec. 3.4;
            [0..5] as the released code; [0] = frame alone).
        oof_folds: folds of the out-of-fold channel probabilities (< 2: in-sample, as the released code).
        n_jobs: XGBoost threads (``None``: the CPUs this process may use).
        seed: seeds the window draw, the folds and XGBoost.
    """

    def __init__(self, num_regions: int = 3, num_hops: int = 3, split_threshold: float = 0.01,
                 keep_threshold: float = 0.001, max_channels: int = 10, max_fit_windows: int | None = 200_000,
                 spatial_components: Sequence[float] = (0.95,), channel_depth: int = 1, channel_trees: int = 100,
                 final_depth: int = 6, final_trees: int = 100, learning_rate: float = 0.3,
                 frame_offsets: Sequence[int] = (-3, -2, -1, 0, 1, 2, 3), oof_folds: int = 5, n_jobs: int | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self.num_regions, self.num_hops = num_regions, num_hops
        components = fixed_or_energy(spatial_components, num_hops)
        self.hops = nn.ModuleList([PixelHopPP(num_hops, 3, split_threshold, keep_threshold, max_channels,
                                              max_fit_windows, seed + r) for r in range(num_regions)])
        self.pcas = nn.ModuleList([nn.ModuleList([SpatialPCA(c) for c in components]) for _ in range(num_regions)])
        self.channel_xgb = BoosterStore()
        self.final_xgb = BoosterStore()
        self.channel_depth, self.channel_trees = channel_depth, channel_trees
        self.final_depth, self.final_trees = final_depth, final_trees
        self.learning_rate = learning_rate
        self.frame_offsets = [int(o) for o in frame_offsets]
        self.oof_folds, self.seed = oof_folds, seed
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.n_jobs = n_jobs if n_jobs is not None else usable

    @property
    def fitted(self) -> bool:
        return len(self.final_xgb) == 1

    def _params(self, depth: int) -> dict:
        return {"objective": "binary:logistic", "max_depth": depth, "eta": self.learning_rate,
                "nthread": self.n_jobs, "seed": self.seed, "tree_method": "hist", "verbosity": 0}

    def _train(self, x: np.ndarray, y: np.ndarray, depth: int, trees: int):
        import xgboost as xgb

        return xgb.train(self._params(depth), xgb.DMatrix(x.astype(np.float32), label=y), num_boost_round=trees)

    # --------------------------------------------------------------------------------------------- features
    def region_features(self, crops: Tensor, region: int, chunk: int = 2048) -> list[np.ndarray]:
        """Spatially reduced responses of one region's crops ``(N, C, 32, 32)``: per hop ``(N, K_h, n_h)``."""
        device = self.hops[region].weight0.device
        per_hop: list[list[np.ndarray]] = [[] for _ in range(self.num_hops)]
        for i in range(0, len(crops), chunk):
            responses = self.hops[region](crops[i: i + chunk].to(device))
            for hop, resp in enumerate(responses):
                per_hop[hop].append(self.pcas[region][hop](resp).float().cpu().numpy())
        return [np.concatenate(parts) for parts in per_hop]

    def channel_probabilities(self, features: list[list[np.ndarray]]) -> np.ndarray:
        """Per frame, the fake probability of every (region, hop, channel), concatenated ``(N, D)``."""
        boosters = iter(self.channel_xgb.boosters())
        columns = [next(boosters).inplace_predict(hop_feats[:, c])
                   for region_feats in features for hop_feats in region_feats for c in range(hop_feats.shape[1])]
        return np.stack(columns, axis=1)

    def frame_features(self, crops: Tensor) -> np.ndarray:
        """``crops (N, R, C, 32, 32)`` -> channel probabilities of all regions ``(N, D)`` (multi-region ensemble)."""
        return self.channel_probabilities([self.region_features(crops[:, r], r) for r in range(self.num_regions)])

    def window(self, features: np.ndarray, video: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Multi-frame ensemble: each frame's features followed by those of its neighbours at ``frame_offsets``."""
        idx = frame_windows(video, frame, self.frame_offsets)
        return features[idx].reshape(len(features), -1)

    def final_probability(self, windowed: np.ndarray) -> np.ndarray:
        return self.final_xgb.boosters()[0].inplace_predict(windowed.astype(np.float32))

    def final_logit(self, windowed: np.ndarray) -> np.ndarray:
        """The final XGBoost's margin (log-odds of fake), float64: ranks without the ties of float32 probabilities."""
        margin = self.final_xgb.boosters()[0].inplace_predict(windowed.astype(np.float32), predict_type="margin")
        return np.asarray(margin, dtype=np.float64)

    # --------------------------------------------------------------------------------------------- fitting
    def _folds(self, labels: np.ndarray, video: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import StratifiedGroupKFold

        videos_per_class = [len(np.unique(video[labels == c])) for c in (0, 1)]
        k = min(self.oof_folds, *videos_per_class)
        if k < 2:
            return []
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=self.seed).split(labels, labels, video))

    @torch.no_grad()
    def fit(self, crops: Tensor, labels: np.ndarray, video: np.ndarray, frame: np.ndarray,
            progress=None) -> dict[str, float]:
        """Fit everything on ``crops (N, R, C, 32, 32)`` with ``labels`` (0/1), integer ``video`` ids and frame
        indices. ``progress(stage)`` is called before each stage. Returns the final classifier's training log-loss
        and the number of folds used."""
        tick = progress or (lambda stage: None)
        labels = np.asarray(labels, dtype=np.float32)
        features = []
        for r in range(self.num_regions):
            tick(f"region {r + 1}/{self.num_regions}: PixelHop++")
            region = crops[:, r].to(device=self.hops[r].weight0.device, dtype=torch.float64)
            responses = self.hops[r].fit_transform(region)
            tick(f"region {r + 1}/{self.num_regions}: spatial PCA")
            reduced = []
            for hop in range(self.num_hops):
                self.pcas[r][hop].fit(responses[hop])
                reduced.append(self.pcas[r][hop](responses[hop]).float().cpu().numpy())
            del responses, region
            features.append(reduced)
        folds = self._folds(labels, video)
        boosters, oof_columns = [], []
        for r, region_feats in enumerate(features):
            tick(f"region {r + 1}/{self.num_regions}: channel XGBoosts ({len(folds)} folds)")
            for hop_feats in region_feats:
                for c in range(hop_feats.shape[1]):
                    x = hop_feats[:, c]
                    booster = self._train(x, labels, self.channel_depth, self.channel_trees)
                    boosters.append(booster)
                    if folds:
                        column = np.empty(len(x), dtype=np.float32)
                        for train_idx, held_idx in folds:
                            fold = self._train(x[train_idx], labels[train_idx], self.channel_depth, self.channel_trees)
                            column[held_idx] = fold.inplace_predict(x[held_idx].astype(np.float32))
                    else:
                        column = booster.inplace_predict(x.astype(np.float32))
                    oof_columns.append(column)
        self.channel_xgb.store(boosters)
        tick("final XGBoost")
        windowed = self.window(np.stack(oof_columns, axis=1), video, frame)
        final = self._train(windowed, labels, self.final_depth, self.final_trees)
        self.final_xgb.store([final])
        self.last_fit_inputs = windowed  # the final classifier's training matrix (inspection / tests)
        prob = np.clip(final.inplace_predict(windowed.astype(np.float32)), 1e-7, 1 - 1e-7)
        log_loss = float(-np.mean(labels * np.log(prob) + (1 - labels) * np.log(1 - prob)))
        return {"log_loss": log_loss, "folds": float(len(folds))}

    # --------------------------------------------------------------------------------------------- Table 4
    def parameter_breakdown(self) -> dict[str, int]:
        """Parameters in Table 4's form, summed over regions, read from the fitted model: PixelHop++ kernels and
        spatial PCA bases per hop, the channel-wise and final XGBoosts as Sec. 4.2 counts them (full trees at the
        booster's max depth, an upper bound) and, apart, their actual fitted nodes (not in the total)."""
        out: dict[str, int] = {}
        for hop in range(self.num_hops):
            out[f"PixelHop++ Hop-{hop + 1}"] = sum(h.kernel_parameters()[hop] for h in self.hops)
        for hop in range(self.num_hops):
            out[f"PCA Hop-{hop + 1}"] = sum(int(p[hop].basis.numel()) for p in self.pcas)
        channel = [booster_parameters(b, self.channel_depth) for b in self.channel_xgb.boosters()]
        final = [booster_parameters(b, self.final_depth) for b in self.final_xgb.boosters()]
        out["Channel-wise XGBoost(s)"] = sum(c[0] for c in channel)
        out["Final XGBoost"] = sum(f[0] for f in final)
        out["Total"] = sum(out.values())
        out["fitted XGBoost nodes (actual)"] = sum(c[1] for c in channel) + sum(f[1] for f in final)
        return out
