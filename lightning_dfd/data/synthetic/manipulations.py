"""Face manipulations made with the operations real forgery pipelines use.

- ``swap_face`` (Deepfakes / FaceSwap / FaceShifter / Celeb-DF / DFDC-like): piecewise-affine warp of the
  source face onto the target's landmarks (Delaunay triangles), optional low-resolution "autoencoder"
  rendering (down/up-sampling, blur, GAN-like sharpening), colour transfer of LAB mean/std to the target
  (Reinhard et al. 2001), convex-hull mask, eroded and Gaussian-feathered, alpha blend. The ``SwapStyle``
  presets differ in resolution, mask region, feathering and colour correction, so per-manipulation metrics
  see different artifacts.
- ``reenact_face`` (Face2Face-like): the target re-rendered with the source's expression (eyes and mouth),
  with the smoothing and illumination error of a model-based re-rendering, blended over the whole face.
- ``neural_texture`` (NeuralTextures-like): only the mouth region is re-rendered, with smoothed texture,
  a checkerboard of transposed-convolution upsampling and a slight colour shift.
All functions take and return uint8 RGB frames and pixel landmarks; lengths are given in canonical face
units and scaled by the target's pose scale (pixels per unit), so results do not depend on frame size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from scipy.spatial import Delaunay

from lightning_dfd.data.synthetic.faces import MOUTH_OUTER
from lightning_dfd.data.synthetic.render import blend


@dataclass(frozen=True)
class SwapStyle:
    """How one face-swap pipeline renders, colour-corrects and blends the source face.

    Args:
        name: label (the FF++ folder name where there is one).
        resolution: resolution of the generated face relative to the frame (1 = warped at full resolution).
        blur: extra Gaussian blur of the generated face, canonical units.
        sharpen: unsharp-mask amount after upsampling (GAN-like halos), 0 = none.
        colour: ``mean_std`` (Reinhard transfer), ``mean`` (shift only) or ``none``.
        colour_strength: fraction of the colour transfer applied (< 1 leaves a colour mismatch).
        region: ``face`` = convex hull of all 68 landmarks, ``inner`` = hull of brows, eyes, nose, mouth.
        erode: mask erosion before feathering, canonical units.
        feather: Gaussian sigma of the mask edge, canonical units (small = hard seam).
    """

    name: str
    resolution: float = 1.0
    blur: float = 0.0
    sharpen: float = 0.0
    colour: Literal["mean_std", "mean", "none"] = "mean_std"
    colour_strength: float = 1.0
    region: Literal["face", "inner"] = "face"
    erode: float = 0.0
    feather: float = 0.05


SWAP_STYLES: dict[str, SwapStyle] = {
    style.name: style
    for style in (
        # 64x64 autoencoder output pasted on a much larger face: blurry face, wide soft mask.
        SwapStyle("Deepfakes", resolution=0.38, blur=0.02, colour="mean_std", region="face", erode=0.08,
                  feather=0.1),
        # Graphics-based: sharp warp of the inner face, partial colour correction, hard-ish seam.
        SwapStyle("FaceSwap", resolution=1.0, colour="mean", colour_strength=0.55, region="inner",
                  erode=0.0, feather=0.012),
        # GAN generator at moderate resolution, sharpened, well colour-matched, medium mask.
        SwapStyle("FaceShifter", resolution=0.55, sharpen=0.9, colour="mean_std", region="face", erode=0.03,
                  feather=0.05),
        # Celeb-DF v2: improved synthesis (higher resolution, colour transfer, smooth mask).
        SwapStyle("CelebDF-v2", resolution=0.7, blur=0.008, sharpen=0.3, colour="mean_std", region="face",
                  erode=0.05, feather=0.08),
        # Celeb-DF v1: low resolution, visible colour mismatch and boundary.
        SwapStyle("CelebDF-v1", resolution=0.4, blur=0.015, colour="mean", colour_strength=0.4,
                  region="face", erode=0.0, feather=0.025),
        # DFDC: several pipelines of varying quality.
        SwapStyle("DFDC-A", resolution=0.4, blur=0.015, colour="mean_std", region="face", erode=0.06,
                  feather=0.09),
        SwapStyle("DFDC-B", resolution=0.8, sharpen=0.6, colour="mean_std", colour_strength=0.8,
                  region="face", erode=0.02, feather=0.04),
        SwapStyle("DFDC-C", resolution=1.0, colour="mean", colour_strength=0.6, region="inner",
                  feather=0.02),
    )
}


def hull_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """float32 mask (0/1) of the convex hull of ``points`` (pixels)."""
    mask = np.zeros(shape, np.uint8)
    hull = cv2.convexHull(np.round(points * 16).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA, 4)
    return mask.astype(np.float32) / 255.0


def feathered_mask(shape: tuple[int, int], points: np.ndarray, scale: float, erode: float = 0.0,
                   dilate: float = 0.0, feather: float = 0.05) -> np.ndarray:
    """Convex-hull mask, eroded (or dilated) and Gaussian-feathered; lengths in canonical units."""
    mask = hull_mask(shape, points)
    radius = round((erode or dilate) * scale)
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        mask = cv2.erode(mask, kernel) if erode > 0 else cv2.dilate(mask, kernel)
    sigma = feather * scale
    if sigma > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), sigma)
    return np.clip(mask, 0.0, 1.0)


def piecewise_affine_warp(source: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
                          out_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Warp ``source`` so that ``source_points`` land on ``target_points`` (piecewise affine).

    The target points are Delaunay-triangulated together with eight anchors well outside the frame, which
    follow the least-squares similarity between the two point sets; each output pixel is mapped through
    the barycentric coordinates of its triangle and sampled bilinearly.
    """
    h, w = out_shape or source.shape[:2]
    sim, _ = cv2.estimateAffinePartial2D(target_points.astype(np.float32), source_points.astype(np.float32))
    if sim is None:
        raise ValueError("piecewise_affine_warp: landmarks are degenerate (no similarity fits them)")
    anchors = np.array([[-0.5, -0.5], [0.5, -0.5], [1.5, -0.5], [1.5, 0.5], [1.5, 1.5], [0.5, 1.5],
                        [-0.5, 1.5], [-0.5, 0.5]]) * np.array([w, h])
    dst = np.concatenate([target_points, anchors]).astype(np.float64)
    src = np.concatenate([source_points, anchors @ sim[:, :2].T + sim[:, 2]]).astype(np.float64)
    triangles = Delaunay(dst).simplices                                    # (K, 3)
    # Per-triangle affine target -> source: [x y 1] @ coef = source point (least squares for slivers).
    design = np.concatenate([dst[triangles], np.ones((len(triangles), 3, 1))], axis=2)   # (K, 3, 3)
    coef = np.linalg.pinv(design) @ src[triangles]                         # (K, 3, 2)
    # Rasterise the triangle index of every pixel; big triangles last so slivers never own a pixel alone.
    edge1 = dst[triangles[:, 1]] - dst[triangles[:, 0]]
    edge2 = dst[triangles[:, 2]] - dst[triangles[:, 0]]
    area = np.abs(edge1[:, 0] * edge2[:, 1] - edge1[:, 1] * edge2[:, 0])
    owner = np.full((h, w), -1, np.int32)
    for k in np.argsort(area):
        cv2.fillConvexPoly(owner, np.round(dst[triangles[k]] * 16).astype(np.int32), int(k), cv2.LINE_8, 4)
    if (owner < 0).any():
        raise RuntimeError("piecewise_affine_warp: a pixel fell outside the triangulation")
    ys, xs = np.mgrid[0:h, 0:w]
    pixels = np.stack([xs, ys, np.ones_like(xs)], axis=-1).astype(np.float64)  # (h, w, 3)
    mapped = np.einsum("hwi,hwij->hwj", pixels, coef[owner])
    map_xy = mapped.reshape(h, w, 2).astype(np.float32)
    return cv2.remap(source, map_xy[..., 0], map_xy[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REFLECT)


def colour_transfer(image: np.ndarray, reference: np.ndarray, mask: np.ndarray,
                    mode: Literal["mean_std", "mean", "none"] = "mean_std",
                    strength: float = 1.0) -> np.ndarray:
    """Match LAB statistics of ``image`` inside ``mask`` to those of ``reference`` (Reinhard transfer)."""
    if mode == "none" or strength <= 0:
        return image
    region = mask > 0.5
    if region.sum() < 4:
        return image
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    ref = cv2.cvtColor(reference.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    mu_src, mu_ref = lab[region].mean(0), ref[region].mean(0)
    if mode == "mean_std":
        sd_src, sd_ref = lab[region].std(0) + 1e-3, ref[region].std(0) + 1e-3
        moved = (lab - mu_src) * (sd_ref / sd_src) + mu_ref
    else:
        moved = lab - mu_src + mu_ref
    out = lab + strength * (moved - lab)
    rgb = cv2.cvtColor(out.astype(np.float32), cv2.COLOR_LAB2RGB)
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def _resample(image: np.ndarray, resolution: float, sharpen: float) -> np.ndarray:
    """Render at ``resolution`` of the frame size and upsample back (a generator's output size)."""
    if resolution >= 0.999:
        return image
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(4, round(w * resolution)), max(4, round(h * resolution))),
                       interpolation=cv2.INTER_AREA)
    up = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC if sharpen > 0 else cv2.INTER_LINEAR)
    if sharpen > 0:
        soft = cv2.GaussianBlur(up, (0, 0), 1.0)
        up = cv2.addWeighted(up, 1.0 + sharpen, soft, -sharpen, 0.0)
    return up


def swap_face(target: np.ndarray, target_landmarks: np.ndarray, source: np.ndarray,
              source_landmarks: np.ndarray, style: SwapStyle, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Paste the source face onto the target (``style`` pipeline). Returns (frame, blend mask).

    Args:
        target, source: uint8 RGB frames (the source shows the donor identity, ideally with the target's
            expression, as a swap autoencoder would render it).
        target_landmarks, source_landmarks: (68, 2) pixel landmarks of each frame.
        scale: the target face's pixels per canonical unit (sets the mask and blur sizes).
    """
    warped = piecewise_affine_warp(source, source_landmarks, target_landmarks, target.shape[:2])
    generated = _resample(warped, style.resolution, style.sharpen)
    if style.blur * scale > 0.3:
        generated = cv2.GaussianBlur(generated, (0, 0), style.blur * scale)
    region = target_landmarks if style.region == "face" else target_landmarks[17:]
    mask = feathered_mask(target.shape[:2], region, scale, erode=style.erode, feather=style.feather)
    generated = colour_transfer(generated, target, mask, style.colour, style.colour_strength)
    return blend(target, generated, mask), mask


def reenact_face(target: np.ndarray, target_landmarks: np.ndarray, reenacted: np.ndarray,
                 reenacted_landmarks: np.ndarray, scale: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Face2Face-like: blend a model-based re-rendering of the target with a new expression over its face.

    ``reenacted`` is the target person, same pose, with the source's expression. The re-rendering loses
    fine texture (Gaussian smoothing) and carries a small illumination error (per-channel gain).
    """
    smooth = cv2.GaussianBlur(reenacted, (0, 0), max(0.4, 0.035 * scale))
    gain = 1.0 + rng.uniform(-0.05, 0.05, 3)
    rerendered = np.clip(smooth.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    points = np.concatenate([target_landmarks, reenacted_landmarks])
    mask = feathered_mask(target.shape[:2], points, scale, erode=0.04, feather=0.045)
    return blend(target, rerendered, mask), mask


def neural_texture(target: np.ndarray, target_landmarks: np.ndarray, reenacted: np.ndarray,
                   reenacted_landmarks: np.ndarray, scale: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """NeuralTextures-like: re-render only the mouth region (source expression) with a neural texture.

    The neural texture is smoother than skin (bilateral filter), carries the checkerboard of
    transposed-convolution upsampling and a small colour shift; it is blended with a feathered mouth mask.
    """
    sigma = max(2.0, 0.06 * scale)
    smooth = cv2.bilateralFilter(reenacted, d=5, sigmaColor=30.0, sigmaSpace=sigma)
    smooth = _resample(smooth, 0.5, 0.0)                 # the renderer's output is coarser than the frame
    h, w = target.shape[:2]
    checker = ((np.add.outer(np.arange(h), np.arange(w)) % 2) * 2.0 - 1.0).astype(np.float32)
    tint = rng.uniform(6.0, 12.0, 3).astype(np.float32) * rng.choice([-1.0, 1.0], 3)
    textured = smooth.astype(np.float32) + 6.0 * checker[..., None] + tint
    textured = np.clip(textured, 0, 255).astype(np.uint8)
    points = np.concatenate([target_landmarks[MOUTH_OUTER], reenacted_landmarks[MOUTH_OUTER]])
    mask = feathered_mask(target.shape[:2], points, scale, dilate=0.16, feather=0.04)
    return blend(target, textured, mask), mask
