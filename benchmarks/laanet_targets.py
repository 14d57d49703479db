"""LAA-Net heatmap/consistency targets per second on one core: :func:`laanet_targets` (vectorised) against
per-point Python loops.

Two loop versions: (a) the same output as ours (box extents walked pixel by pixel, one full-frame Gaussian per
vulnerable point, superimposed by max); (b) the released code's style, each Gaussian drawn only in its 3-sigma
window (cheaper, output differs by < exp(-4.5) outside the windows). Masks come from :class:`SelfBlendedImage`
at 384 px, targets at the head's 96 px, as in LAA-Net.

    python benchmarks/laanet_targets.py [--samples 100] [--image-size 384] [--out-size 96]
"""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import torch

from lightning_dfd.transforms.masks import template_landmarks
from lightning_dfd.transforms.self_blended import SelfBlendedImage
from lightning_dfd.transforms.targets import laanet_targets


def _radius(h: float, w: float, o: float = 0.7) -> float:
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    r2 = (2 * (h + w) + math.sqrt(4 * (h + w) ** 2 - 16 * (1 - o) * w * h)) / 2
    r3 = (-2 * o * (h + w) + math.sqrt(4 * o * o * (h + w) ** 2 - 16 * o * (o - 1) * w * h)) / 2
    return min(r1, r2, r3)


def loop_targets(mask: np.ndarray, out_size: int, rng: np.random.Generator, windowed: bool = False) -> dict:
    """Per-point loops: walk each vulnerable point's row and column, draw its Gaussian, take the max."""
    m = cv2.resize(mask, (out_size, out_size), interpolation=cv2.INTER_AREA)
    if m.max() <= 0:
        return {"heatmap": np.zeros((1, out_size, out_size), np.float32),
                "consistency": np.ones((1, out_size, out_size), np.float32)}
    m = m / m.max()
    boundary = 4 * m * (1 - m)
    quantised = np.rint(boundary * np.float32(255))
    peak = quantised.max()
    rows, cols = np.nonzero(quantised == peak)
    points = list(zip(cols.tolist(), rows.tolist()))
    heatmap = np.zeros((out_size, out_size), np.float32)
    ys, xs = np.mgrid[0:out_size, 0:out_size].astype(np.float32)
    for x, y in points:
        width = height = 1
        if boundary[y, x] > 0.5:
            for step in (-1, 1):
                i = x + step
                while 0 <= i < out_size and boundary[y, i] > 0.5:
                    width, i = width + 1, i + step
                j = y + step
                while 0 <= j < out_size and boundary[j, x] > 0.5:
                    height, j = height + 1, j + step
        sigma = max(_radius(height, width) / 3, 1e-4)
        if windowed:
            reach = int(3 * sigma) + 1
            x0, x1, y0, y1 = max(x - reach, 0), min(x + reach + 1, out_size), max(y - reach, 0), min(y + reach + 1,
                                                                                                     out_size)
            window = np.exp(-((xs[y0:y1, x0:x1] - x) ** 2 + (ys[y0:y1, x0:x1] - y) ** 2) / (2 * sigma * sigma))
            heatmap[y0:y1, x0:x1] = np.maximum(heatmap[y0:y1, x0:x1], window)
        else:
            heatmap = np.maximum(heatmap, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma * sigma)))
    u, v = points[int(rng.integers(len(points)))]
    return {"heatmap": heatmap[None], "consistency": (1 - np.abs(boundary[v, u] - boundary))[None]}


def rate(function, masks: list[np.ndarray], repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for index, mask in enumerate(masks):
            function(mask, np.random.default_rng(index))
        best = min(best, time.perf_counter() - start)
    return len(masks) / best


def main(samples: int = 100, image_size: int = 384, out_size: int = 96, seed: int = 0) -> dict[str, float]:
    """Print targets/s of the vectorised and loop versions (one thread) after checking they agree.

    Args:
        samples: SBI masks per timing run (best of 3 runs).
        image_size: crop side the masks are made at.
        out_size: heatmap side.
        seed: SBI seed.
    """
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    sbi = SelfBlendedImage()
    sbi.set_random_seed(seed)
    image = np.full((image_size, image_size, 3), 128, np.uint8)
    landmarks = template_landmarks(image_size)
    masks = [sbi(image=image, keypoints=landmarks)["mask"] for _ in range(samples)]

    points = []
    for index, mask in enumerate(masks):
        ours = laanet_targets(mask, out_size, np.random.default_rng(index))
        loop = loop_targets(mask, out_size, np.random.default_rng(index))
        np.testing.assert_allclose(ours["heatmap"], loop["heatmap"], atol=1e-5)
        np.testing.assert_allclose(ours["consistency"], loop["consistency"], atol=1e-5)
        points.append(len(ours["points"]))
    print(f"agreement: {samples} SBI masks ({image_size} px -> {out_size} px), heatmap and consistency equal to "
          f"the loop version (atol 1e-5); vulnerable points per mask: mean {np.mean(points):.0f}, "
          f"max {np.max(points)}")

    rate_ours = rate(lambda m, r: laanet_targets(m, out_size, r), masks)
    rate_loop = rate(lambda m, r: loop_targets(m, out_size, r), masks)
    rate_windowed = rate(lambda m, r: loop_targets(m, out_size, r, windowed=True), masks)
    print(f"LAA-Net targets at {out_size}x{out_size}, 1 thread: vectorised {rate_ours:.0f}/s; per-point loop "
          f"(same output) {rate_loop:.0f}/s -> x{rate_ours / rate_loop:.1f}; per-point loop with 3-sigma windows "
          f"(released-code style) {rate_windowed:.0f}/s -> x{rate_ours / rate_windowed:.1f}")
    return {"ours": rate_ours, "loop": rate_loop, "loop_windowed": rate_windowed}


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
