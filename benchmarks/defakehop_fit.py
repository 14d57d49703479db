"""DefakeHop's PixelHop++ (seed 000, Sec. 3.2): fitting and transforming N region crops, the torch implementation
(:class:`~lightning_dfd.models.pixelhop.PixelHopPP`: batched float64 covariances, transforms as convolutions)
against a straightforward NumPy version (windows gathered by a loop over positions, one covariance and eigen-
decomposition per c/w transform, responses and max pooling by loops). Both fit the same three hops on the same
crops with every window; the outputs are compared before the times are printed. One run each.

    python benchmarks/defakehop_fit.py [--crops 1000] [--threads 1]

Also, the whole DefakeHop fit (three regions, XGBoosts) on the Celeb-DF twin is timed by README "DefakeHop".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from lightning_dfd.models.pixelhop import PASSED, PixelHopPP


def numpy_windows(maps: np.ndarray, k: int = 3) -> np.ndarray:
    n, c, h, w = maps.shape
    out = np.empty((n, h - k + 1, w - k + 1, c * k * k))
    for i in range(h - k + 1):
        for j in range(w - k + 1):
            out[:, i, j] = maps[:, :, i: i + k, j: j + k].reshape(n, -1)
    return out


def numpy_pool(maps: np.ndarray) -> np.ndarray:
    n, h, w, c = maps.shape
    out = np.empty((n, -(-h // 2), -(-w // 2), c))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            out[:, i, j] = maps[:, 2 * i: 2 * i + 2, 2 * j: 2 * j + 2].max(axis=(1, 2))
    return out


def numpy_saab(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = x.shape[1]
    dc = np.full(d, 1 / np.sqrt(d))
    cov = np.cov(x, rowvar=False)
    proj = np.eye(d) - np.outer(dc, dc)
    vals, vecs = np.linalg.eigh(proj @ cov @ proj)
    vals, vecs = vals[::-1][: d - 1].clip(0), vecs[:, ::-1][:, : d - 1].T
    vecs = vecs * np.sign(vecs[np.arange(d - 1), np.abs(vecs).argmax(1)])[:, None]  # largest entry positive
    energies = np.concatenate([[dc @ cov @ dc], vals]) / np.trace(cov)
    return np.vstack([dc, vecs]), energies, x.mean(0)


def numpy_pixelhop(images: np.ndarray, split: float, keep: float, max_channels: int) -> list[np.ndarray]:
    """Fit + transform three c/w Saab hops; returns the pooled responses (N, s, s, K) per hop."""
    outputs, maps, parent_energy = [], images, np.ones(1)
    sources = [maps]  # per c/w transform: the (N, C, H, W) maps it sees
    for _ in range(3):
        candidates = []  # (energy, source index, kernel, mean)
        windows = [numpy_windows(src) for src in sources]
        for s, win in enumerate(windows):
            kernels, energies, mean = numpy_saab(win.reshape(-1, win.shape[-1]))
            for kernel, energy in zip(kernels, energies * parent_energy[s]):
                candidates.append((energy, s, kernel, mean))
        candidates = sorted((c for c in candidates if c[0] >= keep), key=lambda c: -c[0])[:max_channels]
        responses = np.stack([(windows[s] - mean) @ kernel for _, s, kernel, mean in candidates], axis=-1)
        pooled = numpy_pool(responses)
        outputs.append(pooled)
        passed = [i for i, c in enumerate(candidates) if c[0] >= split] or [0]
        sources = [pooled[..., i][:, None] for i in passed]
        parent_energy = np.array([candidates[i][0] for i in passed])
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(args.crops, 3, 6, 6, generator=gen, dtype=torch.float64)
    images = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    images = images + 0.05 * torch.rand(images.shape, generator=gen, dtype=torch.float64)

    start = time.perf_counter()
    model = PixelHopPP(max_fit_windows=None)
    ours = model.fit_transform(images)
    t_torch = time.perf_counter() - start

    start = time.perf_counter()
    theirs = numpy_pixelhop(images.numpy(), model.split_threshold, model.keep_threshold, model.max_channels)
    t_numpy = time.perf_counter() - start

    for hop, (a, b) in enumerate(zip(ours, theirs)):  # same channels, same kernel signs
        b = np.moveaxis(b, -1, 1)
        assert a.shape == b.shape, (hop, a.shape, b.shape)
        assert np.allclose(a.numpy(), b, atol=1e-6), f"hop {hop + 1} differs"
    passed = [int((model.hop_buffers(h)[4] == PASSED).sum()) for h in range(3)]
    print(f"PixelHop++ fit + transform of {args.crops} crops 32x32x3 (3 hops, channels {[len(o[0]) for o in ours]}, "
          f"passed on {passed}), {args.threads} thread(s):")
    print(f"  torch  {t_torch:8.2f} s")
    print(f"  NumPy  {t_numpy:8.2f} s   (window / pooling loops)")
    print(f"  ratio  {t_numpy / t_torch:8.1f} x")


if __name__ == "__main__":
    main()
