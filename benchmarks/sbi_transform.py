"""SBI samples/s on one core: :class:`SelfBlendedImage` against a straightforward full-frame NumPy/OpenCV version.

Both consume the same random draws (``SelfBlendedImage.draw``), so the outputs are compared sample by sample
(mask area, blend change) and in aggregate; the reference is the obvious per-sample implementation: augment the
whole copy (uint8 lookup tables), warp the whole source, rasterise and warp a full-frame hull mask,
deform/erode/blur it in float64 on the whole frame and blend the whole frame in float64. The reference's elastic
jitter is its own full-frame noise with SBI's statistics, so per-sample masks differ along the boundary only.

    python benchmarks/sbi_transform.py [--size 256] [--samples 300]
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import torch

from lightning_dfd.transforms.masks import grid_fields, hull_polygons, template_landmarks
from lightning_dfd.transforms.self_blended import SelfBlendedImage, SourceTargetParams


def synthetic_face(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    landmarks = template_landmarks(size)
    image = cv2.GaussianBlur(rng.integers(0, 90, (size, size, 3), dtype=np.uint8), (0, 0), 2)
    cv2.fillConvexPoly(image, cv2.convexHull(landmarks.astype(np.int32)), (200, 160, 130))
    cv2.fillConvexPoly(image, cv2.convexHull(landmarks[48:60].astype(np.int32)), (150, 60, 60))
    noise = rng.normal(0, 6, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), landmarks


def reference_augment(image: np.ndarray, p: SourceTargetParams) -> np.ndarray:
    """Colour (per-channel lookup table, as albumentations does it) then frequency augmentation of a whole copy."""
    table = p.contrast * (np.arange(256.0)[:, None] + np.asarray(p.rgb_shift)) + 255.0 * p.brightness
    out = cv2.LUT(image, np.clip(np.rint(table), 0, 255).astype(np.uint8).reshape(256, 1, 3))
    h, w = out.shape[:2]
    if p.frequency == "downscale":
        small = cv2.resize(out, (w // p.downscale_factor, h // p.downscale_factor), interpolation=cv2.INTER_NEAREST)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif p.frequency == "sharpen":
        kernel = np.full((3, 3), -p.sharpen_alpha)
        kernel[1, 1] = (1 - p.sharpen_alpha) + p.sharpen_alpha * (8 + p.sharpen_lightness)
        out = cv2.filter2D(out, -1, kernel)
    return out


def reference_sbi(image: np.ndarray, landmarks: np.ndarray, transform: SelfBlendedImage) -> dict[str, np.ndarray]:
    """The same SBI sample computed per sample on the full frame in float64."""
    h, w = image.shape[:2]
    source_target, affine, recipe = transform.draw(image.shape, landmarks)
    source, target = image.copy(), image.copy()
    if source_target.augment_source:
        source = reference_augment(source, source_target)
    else:
        target = reference_augment(target, source_target)
    source = cv2.warpAffine(source, affine, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    mask = np.zeros((h, w), np.uint8)
    polygons = hull_polygons(landmarks, recipe.hull_type)
    for polygon in polygons:
        cv2.fillConvexPoly(mask, np.round(polygon * 16).astype(np.int32), 255, cv2.LINE_8, 4)
    mask = cv2.warpAffine(mask, affine, (w, h), flags=cv2.INTER_NEAREST)
    displacement = np.zeros((2, h, w), np.float64)
    if np.any(recipe.control_offsets):  # BI's grid, interpolated over the whole frame
        displacement += np.stack(grid_fields(recipe.control_offsets, image.shape, (0, 0, w, h)))
    if recipe.elastic_alpha > 0:  # SBI's elastic jitter: its own full-frame noise (same statistics, not draws)
        noise = np.random.default_rng(recipe.elastic_seed).uniform(-1.0, 1.0, (2, h, w))
        displacement += np.stack([recipe.elastic_alpha * cv2.GaussianBlur(c, (0, 0), recipe.elastic_sigma)
                                  for c in noise])
    if np.any(displacement):
        grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        mask = cv2.remap(mask, (grid_x + displacement[0]).astype(np.float32),
                         (grid_y + displacement[1]).astype(np.float32), cv2.INTER_LINEAR, borderValue=0)
        mask = np.where(mask > 127, 255, 0).astype(np.uint8)
    if recipe.morph != "none":
        kernel = np.ones((recipe.morph_kernel[1], recipe.morph_kernel[0]), np.uint8)
        morphed = cv2.erode(mask, kernel) if recipe.morph == "erode" else cv2.dilate(mask, kernel)
        mask = morphed if morphed.any() else mask
    soft = cv2.GaussianBlur(mask.astype(np.float64) / 255.0, recipe.blur_kernel, recipe.blur_sigma[0],
                            sigmaY=recipe.blur_sigma[1])
    soft = soft / soft.max() * recipe.blend_ratio
    blended = soft[..., None] * source.astype(np.float64) + (1 - soft[..., None]) * target.astype(np.float64)
    return {"image": np.clip(np.rint(blended), 0, 255).astype(np.uint8), "mask": soft.astype(np.float32),
            "background": target}


def samples_per_second(function, repeats: int = 3) -> float:
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        count = function()
        best = min(best, (time.perf_counter() - start) / count)
    return 1.0 / best


def main(size: int = 256, samples: int = 300, seed: int = 0) -> dict[str, float]:
    """Print SBI samples/s (ours vs the full-frame reference, one thread) and check both agree.

    Args:
        size: square crop side (256 or 380 in SBI).
        samples: samples per timing run (best of 3 runs).
        seed: transform seed.
    """
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    image, landmarks = synthetic_face(size)
    ours, theirs = SelfBlendedImage(), SelfBlendedImage()

    # agreement on identical draws
    ours.set_random_seed(seed)
    theirs.set_random_seed(seed)
    stats = {"area_ours": [], "area_ref": [], "change_ours": [], "change_ref": [], "mask_diff": []}
    for _ in range(samples):
        a = ours(image=image, keypoints=landmarks)
        b = reference_sbi(image, landmarks, theirs)
        stats["area_ours"].append(a["mask"].mean())
        stats["area_ref"].append(b["mask"].mean())
        stats["change_ours"].append(np.abs(a["image"].astype(int) - a["background"]).mean())
        stats["change_ref"].append(np.abs(b["image"].astype(int) - b["background"]).mean())
        stats["mask_diff"].append(np.abs(a["mask"] - b["mask"]).mean())
    mean = {k: float(np.mean(v)) for k, v in stats.items()}
    assert abs(mean["area_ours"] - mean["area_ref"]) <= 0.02 * mean["area_ref"], mean
    assert abs(mean["change_ours"] - mean["change_ref"]) <= 0.05 * mean["change_ref"], mean
    assert mean["mask_diff"] < 0.01, mean
    print(f"agreement over {samples} samples: mean mask area {mean['area_ours']:.4f} vs {mean['area_ref']:.4f}; "
          f"mean |fake - real| {mean['change_ours']:.3f} vs {mean['change_ref']:.3f}; "
          f"mean |M_ours - M_ref| {mean['mask_diff']:.5f}")

    def run_ours() -> int:
        for _ in range(samples):
            ours(image=image, keypoints=landmarks)
        return samples

    def run_reference() -> int:
        for _ in range(samples):
            reference_sbi(image, landmarks, theirs)
        return samples

    for _ in range(20):  # warm-up
        ours(image=image, keypoints=landmarks)
        reference_sbi(image, landmarks, theirs)
    rate_ours = samples_per_second(run_ours)
    rate_reference = samples_per_second(run_reference)
    ratio = rate_ours / rate_reference
    print(f"SBI {size}x{size}, 1 thread: ours {rate_ours:.0f} samples/s, full-frame reference "
          f"{rate_reference:.0f} samples/s, speed-up x{ratio:.2f} (goal >= 2: {'met' if ratio >= 2 else 'NOT met'})")
    return {"ours": rate_ours, "reference": rate_reference, "ratio": ratio}


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main, as_positional=False)
