"""LAA-Net ground truth from a blend mask (Nguyen et al., CVPR 2024, §3.1.2, Eq. 2-4 and 7), vectorised.

At the heatmap head's resolution D x D:

* blending boundary ``B = 4 M (1 - M)`` (Eq. 2), 1 where M = 0.5 and 0 where M is 0 or 1;
* vulnerable points ``P = argmax B`` (Eq. 3). The released code stores B as 8-bit (x 255), so P is every pixel
  whose *quantised* B ties the maximum: a thin ring along the blending boundary. ``quantization_levels=255``
  reproduces that; ``None`` takes the exact float maximum (usually one pixel);
* heatmap ``H = max_k exp(-((x - x_k)^2 + (y - y_k)^2) / (2 sigma_k^2))`` (Eq. 4, unnormalised Gaussians
  superimposed by element-wise max) with ``sigma_k = r_k / 3`` and ``r_k`` CornerNet's radius at IoU 0.7 of the
  "virtual box" of p_k: as in the released code, its width and height are the lengths of the horizontal and
  vertical runs of ``B > 0.5`` through p_k (the extent of the blending boundary around the point);
* self-consistency ``C = 1 - |b_uv - B|`` (Eq. 7) for one vulnerable point p_s = (u, v) drawn at random: a 2-D map,
  1 at p_s.

Reals (or masks without any blending) get ``H = 0`` and ``C = 1`` (Eq. 7 with B = 0, the paper's reading). The
released code trains reals towards ``C = 0``; :class:`~lightning_dfd.losses.heatmap_focal.LAANetLoss` sets the real
images' target (``real_consistency_target``: 0 by default, as released), whatever this transform wrote.

Departures from the released code, all documented: the Gaussians are not truncated at 3 sigma (Eq. 4 has no
truncation; the released cut-off drops values up to exp(-4.5) = 0.011; only tails below exp(-16) = 1.1e-7 are
skipped here); the mask M is resized to D x D before Eq. 2 (so the
peak of B stays exactly 1); the run length counts the point once (the released walk counts it twice).
By default M is divided by its maximum first (``normalize_mask``): the released code computes B from the mask
before the blending ratio r is applied, so B reaches 1 for every r; with r = 0.25 the raw M never reaches 0.5 and
``argmax B`` would be the whole face plateau instead of the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

__all__ = ["LaaNetTargets", "blend_boundary", "gaussian_heatmap", "gaussian_radius", "laanet_targets",
           "real_targets", "run_lengths", "self_consistency", "vulnerable_points"]


def blend_boundary(mask: np.ndarray) -> np.ndarray:
    """Eq. (2): ``B = 4 * M * (1 - M)``."""
    m = np.asarray(mask, np.float32)
    return np.float32(4.0) * m * (np.float32(1.0) - m)


def vulnerable_points(boundary: np.ndarray, quantization_levels: int | None = 255) -> np.ndarray:
    """Eq. (3): all (x, y) positions of the maximum of B (after quantisation to ``levels``), (K, 2) int64.

    Empty (0, 2) when B is zero everywhere (a real image)."""
    if quantization_levels is not None:
        levels = np.rint(boundary * np.float32(quantization_levels))
    else:
        levels = boundary
    peak = levels.max(initial=0.0)
    if peak <= 0:
        return np.zeros((0, 2), np.int64)
    rows, cols = np.nonzero(levels == peak)
    return np.stack([cols, rows], axis=1).astype(np.int64)


def run_lengths(binary: np.ndarray, axis: int) -> np.ndarray:
    """Length of the run of True values containing each pixel along ``axis`` (0 where False), vectorised."""
    grid = np.asarray(binary, bool)
    if axis == 0:
        return run_lengths(grid.T, 1).T
    height, width = grid.shape
    padded = np.zeros((height, width + 2), np.int8)
    padded[:, 1:-1] = grid
    edges = np.diff(padded, axis=1).ravel()  # (height, width + 1): +1 at a run's first pixel, -1 after its last
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    lengths = ends - starts
    marks = np.zeros(height * (width + 1) + 1, np.int64)
    marks[starts] += lengths
    marks[ends] -= lengths
    return np.cumsum(marks[:-1]).reshape(height, width + 1)[:, :width]


def gaussian_radius(height: np.ndarray | float, width: np.ndarray | float, min_overlap: float = 0.7) -> np.ndarray:
    """CornerNet's radius (Law & Deng 2018, as released and used by LAA-Net): the smallest of the three corner
    displacements keeping IoU >= ``min_overlap`` with an (height x width) box; vectorised.

    Each case solves ``a r^2 - b r + c = 0`` and, like the released code, takes ``(b + sqrt(b^2 - 4ac)) / 2``.
    """
    h = np.asarray(height, np.float64)
    w = np.asarray(width, np.float64)
    o = min_overlap
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return np.minimum(np.minimum(r1, r2), r3)


NEGLIGIBLE_EXPONENT = 16.0  # exp(-16) = 1.1e-7: Gaussian tails below this are not drawn


def gaussian_heatmap(points: np.ndarray, sigmas: np.ndarray, shape: tuple[int, int], chunk: int = 64) -> np.ndarray:
    """Eq. (4) superimposed by element-wise max: ``max_k exp(-((x-x_k)^2 + (y-y_k)^2) / (2 sigma_k^2))``.

    Computed as ``exp(-min_k q_k)`` with the quadratic forms q_k, no loops over pixels or points: every point's
    q_k is evaluated in a square window of half-width ``ceil(sqrt(2 * 16) * max sigma)`` and scattered with
    ``np.minimum.at`` (outside its window a Gaussian is below exp(-16) = 1.1e-7, so the map equals the untruncated
    Eq. 4 to 1.2e-7); when that window would cover most of the map, dense chunks of points are used instead.
    """
    height, width = shape
    if len(points) == 0:
        return np.zeros(shape, np.float32)
    sigmas = np.asarray(sigmas, np.float64)
    inv = (0.5 / np.square(sigmas)).astype(np.float32)
    px, py = points[:, 0].astype(np.int64), points[:, 1].astype(np.int64)
    reach = int(np.ceil(np.sqrt(2.0 * NEGLIGIBLE_EXPONENT) * sigmas.max()))
    exponent = np.full(height * width, np.inf, np.float32)
    if (2 * reach + 1) ** 2 * 4 < height * width:
        offsets = np.arange(-reach, reach + 1)
        squared = np.square(offsets).astype(np.float32)
        xs, ys = px[:, None] + offsets, py[:, None] + offsets  # (K, 2R+1)
        q = (squared[None, :, None] + squared[None, None, :]) * inv[:, None, None]  # (K, 2R+1, 2R+1)
        inside = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
        flat = ys[:, :, None] * width + xs[:, None, :]
        np.minimum.at(exponent, flat[inside], q[inside])
        exponent = exponent.reshape(height, width)
    else:
        exponent = exponent.reshape(height, width)
        qx = np.square(np.arange(width, dtype=np.float32)[None, :] - px[:, None].astype(np.float32)) * inv[:, None]
        qy = np.square(np.arange(height, dtype=np.float32)[None, :] - py[:, None].astype(np.float32)) * inv[:, None]
        for start in range(0, len(points), chunk):  # chunks of points bound the memory to chunk * H * W
            block = qy[start:start + chunk, :, None] + qx[start:start + chunk, None, :]
            np.minimum(exponent, block.min(axis=0), out=exponent)
    return np.exp(-exponent)


def self_consistency(boundary: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Eq. (7): ``C = 1 - |b_uv - B|`` for the vulnerable point (u, v) = (x, y)."""
    b_uv = boundary[int(point[1]), int(point[0])]
    return np.float32(1.0) - np.abs(b_uv - boundary)


def real_targets(out_size: int) -> dict[str, np.ndarray]:
    """Targets of a real image: ``H = 0``, ``C = 1`` (Eq. 7 with B = 0), no vulnerable points."""
    return {"heatmap": np.zeros((1, out_size, out_size), np.float32),
            "consistency": np.ones((1, out_size, out_size), np.float32),
            "points": np.zeros((0, 2), np.int64), "selected_point": np.full(2, -1, np.int64)}


def _as_mask(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, np.float32)
    if m.ndim == 3 and 1 in (m.shape[0], m.shape[-1]):
        m = m.reshape(m.shape[1:] if m.shape[0] == 1 else m.shape[:2])
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"blend mask must be a non-empty (H, W), (1, H, W) or (H, W, 1) array; got {m.shape}")
    low, high, _, _ = cv2.minMaxLoc(m)
    if low < -1e-4 or high > 1 + 1e-4:
        raise ValueError(f"blend mask values must lie in [0, 1] (got [{low:.3g}, {high:.3g}]); pass M of Eq. 1 "
                         f"as float, not an 8-bit image (divide by 255).")
    return m if low >= 0 and high <= 1 else np.clip(m, 0.0, 1.0)


def laanet_targets(mask: np.ndarray, out_size: int, rng: np.random.Generator | None = None, *,
                   quantization_levels: int | None = 255, extent_threshold: float = 0.5, min_overlap: float = 0.7,
                   normalize_mask: bool = True) -> dict[str, np.ndarray]:
    """Heatmap (Eq. 4) and self-consistency (Eq. 7) targets of a blend mask at the head's ``out_size``.

    Args:
        mask: M of Eq. (1), float in [0, 1], (H, W) (also (1, H, W) / (H, W, 1)); zeros for a real image.
        out_size: heatmap side D (the head's resolution); M is resized with area interpolation.
        rng: draws p_s among the vulnerable points (``np.random.default_rng()`` when None).
        quantization_levels: B is rounded to this many levels before the argmax of Eq. (3) (None: exact).
        extent_threshold: B level delimiting a vulnerable point's virtual box (released code: 128 / 255).
        min_overlap: CornerNet IoU threshold t (0.7 in the paper).
        normalize_mask: divide M by its maximum first (B from the mask before the blending ratio).

    Returns:
        ``heatmap`` (1, D, D), ``consistency`` (1, D, D) float32, ``points`` (K, 2) int64 (x, y) = P,
        ``selected_point`` (2,) = p_s (-1, -1 for reals), ``sigmas`` (K,) float64.
    """
    if out_size < 1:
        raise ValueError(f"out_size must be >= 1, got {out_size}")
    m = _as_mask(mask)
    if m.shape != (out_size, out_size):
        interpolation = cv2.INTER_AREA if min(m.shape) >= out_size else cv2.INTER_LINEAR
        m = cv2.resize(m, (out_size, out_size), interpolation=interpolation)
    peak = float(m.max(initial=0.0))
    if not np.isfinite(peak):
        raise ValueError("blend mask contains NaN or inf")
    if peak <= 0.0:
        return {**real_targets(out_size), "sigmas": np.zeros(0)}
    if normalize_mask:
        m = m / np.float32(peak)
    boundary = blend_boundary(m)
    points = vulnerable_points(boundary, quantization_levels)
    if len(points) == 0:  # M is a hard 0/1 mask: no blending anywhere
        return {**real_targets(out_size), "sigmas": np.zeros(0)}
    inside = boundary > extent_threshold
    widths = np.maximum(run_lengths(inside, axis=1)[points[:, 1], points[:, 0]], 1)
    heights = np.maximum(run_lengths(inside, axis=0)[points[:, 1], points[:, 0]], 1)
    sigmas = np.maximum(gaussian_radius(heights, widths, min_overlap) / 3.0, 1e-4)
    heatmap = gaussian_heatmap(points, sigmas, (out_size, out_size))
    rng = rng if rng is not None else np.random.default_rng()
    selected = points[int(rng.integers(len(points)))]
    consistency = self_consistency(boundary, selected)
    return {"heatmap": heatmap[None], "consistency": consistency[None].astype(np.float32), "points": points,
            "selected_point": selected.copy(), "sigmas": sigmas}


class LaaNetTargets:
    """Adds ``heatmap`` and ``consistency`` (1, D, D) to a sample dict from its ``mask`` (and ``label``).

    A sample with ``label == 0``, no ``mask`` or an all-zero mask gets the real targets (H = 0, C = 1). p_s is drawn
    from ``self.random_generator``; :func:`lightning_dfd.transforms.seeding.reseed_transforms` reseeds it like an
    albumentations transform (``set_random_seed``).

    Args:
        out_size: heatmap side D (LAA-Net: 96 for 384 px inputs, i.e. the input side / 4).
        quantization_levels: see :func:`laanet_targets`.
        extent_threshold: see :func:`laanet_targets`.
        min_overlap: see :func:`laanet_targets`.
        normalize_mask: see :func:`laanet_targets`.
        seed: initial seed of the generator (None: fresh entropy).
    """

    def __init__(self, out_size: int = 96, quantization_levels: int | None = 255, extent_threshold: float = 0.5,
                 min_overlap: float = 0.7, normalize_mask: bool = True, seed: int | None = None):
        if out_size < 1:
            raise ValueError(f"out_size must be >= 1, got {out_size}")
        if not 0.0 < min_overlap < 1.0:
            raise ValueError(f"min_overlap must lie in (0, 1), got {min_overlap}")
        self.out_size = out_size
        self.quantization_levels = quantization_levels
        self.extent_threshold = extent_threshold
        self.min_overlap = min_overlap
        self.normalize_mask = normalize_mask
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int | None) -> None:
        self.seed = seed
        self.random_generator = np.random.default_rng(seed)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        mask = sample.get("mask")
        if int(sample.get("label", 1)) == 0 or mask is None:
            targets = real_targets(self.out_size)
        else:
            targets = laanet_targets(np.asarray(mask), self.out_size, self.random_generator,
                                     quantization_levels=self.quantization_levels,
                                     extent_threshold=self.extent_threshold, min_overlap=self.min_overlap,
                                     normalize_mask=self.normalize_mask)
        out["heatmap"] = targets["heatmap"]
        out["consistency"] = targets["consistency"]
        return out

    def __repr__(self) -> str:
        return (f"LaaNetTargets(out_size={self.out_size}, quantization_levels={self.quantization_levels}, "
                f"extent_threshold={self.extent_threshold}, min_overlap={self.min_overlap}, "
                f"normalize_mask={self.normalize_mask})")
