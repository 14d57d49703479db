"""Blend-mask generator shared by SBI and BI: the deformed convex-hull mask M of LAA-Net Eq. (1).

Steps (SBI, Shiohara & Yamasaki 2022, §3.3 "mask generator"; Face X-ray, Li et al. 2020, §3.2):

1. a landmark hull (one of :data:`HULL_TYPES`, drawn at random),
2. a deformation applied with ``cv2.remap``: SBI's elastic jitter of the boundary (albumentations
   ``ElasticTransform(alpha=50, sigma=7)``: per-pixel uniform noise blurred by a Gaussian of sigma 7 px, times 50)
   and/or Face X-ray's piecewise-affine deformation (imgaug ``PiecewiseAffine(scale=(0.01, 0.15))``: a 4 x 4 grid
   spanning the image, points moved by N(0, (s * side)^2), interpolated linearly),
3. erosion or dilation with a random rectangular kernel (SBI's first Gaussian blur followed by zeroing every
   value below 1 *is* an erosion by the blur's support, so it is done here as one),
4. a Gaussian blur with a random kernel and sigma, per axis scaled by a random aspect factor (SBI resizes the mask
   to a random size before blurring, which amounts to the same), normalised to a maximum of 1,
5. multiplication by a random blending ratio.

Everything is computed inside a region of interest (ROI): the hull's bounding box grown by exactly the distance
the deformation, dilation and blur can move mass, so the mask outside the ROI is exactly zero and the result
equals the full-frame computation. Random draws live in :func:`draw_mask_recipe` (called from a transform's
``get_params_dependent_on_data``); :func:`render_blend_mask` is deterministic given the recipe.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Annotated, Any, Literal

import cv2
import numpy as np
from pydantic import AfterValidator, Field

NUM_LANDMARKS = 68
JAW = slice(0, 17)
RIGHT_BROW = slice(17, 22)  # subject's right = image left
LEFT_BROW = slice(22, 27)
NOSE_BRIDGE = slice(27, 31)
NOSE = slice(27, 36)
RIGHT_EYE = slice(36, 42)
LEFT_EYE = slice(42, 48)
MOUTH = slice(48, 68)

HullType = Literal["face", "extended", "inner", "halves"]
HULL_TYPES: tuple[HullType, ...] = ("face", "extended", "inner", "halves")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive ends)


def check_landmarks(landmarks: np.ndarray | Sequence, what: str = "keypoints") -> np.ndarray:
    """Return the first 68 (x, y) landmarks as float32 (68, 2); accepts albumentations' (N, 2+) keypoint arrays."""
    if landmarks is None:
        raise ValueError(f"{what} missing: blending transforms need the 68 iBUG landmarks of the crop "
                         f"(pass keypoints=<(68, 2) array>; the manifest's 'landmarks' column holds them, "
                         f"fill it with `python -m lightning_dfd preprocess --landmarks <backend>`).")
    array = np.asarray(landmarks, dtype=np.float32)
    if array.ndim == 1 and array.size >= 2 * NUM_LANDMARKS and array.size % 2 == 0:
        array = array.reshape(-1, 2)  # manifest layout x0, y0, x1, y1, ...
    if array.ndim != 2 or array.shape[0] < NUM_LANDMARKS or array.shape[1] < 2:
        raise ValueError(f"{what} must be an (N>=68, 2) array of iBUG-68 landmarks in crop coordinates, "
                         f"got shape {array.shape}; re-run preprocess with a 68-point landmark backend (inside an "
                         f"albumentations Compose use KeypointParams('xy', remove_invisible=False) so none drop).")
    array = np.ascontiguousarray(array[:NUM_LANDMARKS, :2])
    if not np.isfinite(array).all():
        raise ValueError(f"{what} contain NaN/inf; drop rows without landmarks (manifest status != 'ok').")
    return array


def face_size(landmarks: np.ndarray) -> float:
    """Longer side of the landmarks' bounding box (pixels), at least 1."""
    extent = landmarks.max(axis=0) - landmarks.min(axis=0)
    return float(max(extent.max(), 1.0))


def forehead_points(landmarks: np.ndarray, lift: float = 0.8) -> np.ndarray:
    """Brow points pushed away from their eye's centre by ``lift`` times their distance: a forehead estimate
    standing in for the 13 extra forehead points of SBI's 81-landmark model."""
    right_eye = landmarks[RIGHT_EYE].mean(axis=0)
    left_eye = landmarks[LEFT_EYE].mean(axis=0)
    right = landmarks[RIGHT_BROW] + lift * (landmarks[RIGHT_BROW] - right_eye)
    left = landmarks[LEFT_BROW] + lift * (landmarks[LEFT_BROW] - left_eye)
    return np.concatenate([right, left]).astype(np.float32)


def hull_polygons(landmarks: np.ndarray, hull_type: HullType) -> list[np.ndarray]:
    """Convex hulls (float32 (K, 2) each) whose union is the initial mask of one hull type.

    ``face``: all 68 points; ``extended``: face plus :func:`forehead_points`; ``inner``: brows, eyes, nose and
    mouth without the jaw line; ``halves``: union of the two half-face hulls (jaw half + brow + nose bridge),
    not convex at chin and forehead.
    """
    if hull_type == "face":
        groups = [landmarks]
    elif hull_type == "extended":
        groups = [np.concatenate([landmarks, forehead_points(landmarks)])]
    elif hull_type == "inner":
        groups = [landmarks[17:68]]
    elif hull_type == "halves":
        groups = [np.concatenate([landmarks[0:9], landmarks[RIGHT_BROW], landmarks[NOSE_BRIDGE]]),
                  np.concatenate([landmarks[8:17], landmarks[LEFT_BROW], landmarks[NOSE_BRIDGE]])]
    else:
        raise ValueError(f"unknown hull type {hull_type!r}; choose from {HULL_TYPES}")
    return [cv2.convexHull(np.ascontiguousarray(g, dtype=np.float32)).reshape(-1, 2) for g in groups]


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine matrix to (N, 2) points."""
    return (points @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def odd(value: float) -> int:
    """Nearest odd integer >= 1."""
    n = max(round(value), 1)
    return n if n % 2 else n + 1


# ---------------------------------------------------------------------------------------------- settings


def _increasing(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"range {value} must be (low, high) with low <= high")
    return value


def _hulls(value: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [v for v in value if v not in HULL_TYPES]
    if not value or unknown:
        raise ValueError(f"hull_types must be a non-empty tuple of {HULL_TYPES}, got {value}")
    return value


def _ratios(value: tuple[float, ...]) -> tuple[float, ...]:
    if not value or any(not 0.0 < v <= 1.0 for v in value):
        raise ValueError(f"blend_ratios must be a non-empty tuple of values in (0, 1], got {value}")
    return value


# Annotated field types reused by the transforms' InitSchema (albumentations validates with pydantic).
FloatRange = Annotated[tuple[float, float], AfterValidator(_increasing)]
KernelRange = Annotated[tuple[Annotated[int, Field(ge=1)], Annotated[int, Field(ge=1)]], AfterValidator(_increasing)]
HullTypes = Annotated[tuple[str, ...], AfterValidator(_hulls)]
BlendRatios = Annotated[tuple[float, ...], AfterValidator(_ratios)]

SBI_BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)


@dataclass(frozen=True)
class MaskSettings:
    """The ranges the random blend mask is drawn from: one settings group shared by SBI and BI (``mask:`` of
    :class:`~lightning_dfd.transforms.self_blended.SelfBlendedImage` and
    :class:`~lightning_dfd.transforms.blended.BlendedImage`). The defaults are SBI's released settings;
    :data:`BI_MASK_SETTINGS` holds Face X-ray's.

    Sizes in pixels (kernels, sigmas, elastic alpha/sigma) are pixels of a ``reference_size`` image and scale with
    the actual image (SBI and the released BI work on crops of about 256 px).

    Args:
        hull_types: mask hulls drawn uniformly (repeat a name to weight it); SBI uses its 81-point hull 3/4 of the
            time and the 68-point hull 1/4 (``extended`` stands in for the 81 points).
        elastic_alpha: SBI's elastic deformation (albumentations ``ElasticTransform(alpha=50, sigma=7)``): a
            uniform(-1, 1) noise per pixel, blurred by a Gaussian of ``elastic_sigma``, times ``elastic_alpha``, is
            the displacement of each pixel (about 1.16 px std, correlated over ~10 px: a fine boundary jitter).
            Scaled by (image / reference_size)^2, so the field scales geometrically with the image. 0: off.
        elastic_sigma: the Gaussian's sigma of the elastic field (7 in SBI), scaled linearly with the image.
        grid_scale: Face X-ray's piecewise-affine deformation (imgaug ``PiecewiseAffine(scale=(0.01, 0.15))``): the
            points of a ``grid_size`` x ``grid_size`` grid spanning the image move by N(0, (s * side)^2) with s
            drawn uniformly from this range (side = width for x, height for y) and the displacement is
            interpolated linearly between them. (0, 0): off.
        grid_size: points per side of that grid (imgaug's default 4).
        erode_probability: probability of an erosion (else a dilation with ``dilate_kernel``).
        erode_kernel: erosion kernel range; SBI's first blur + threshold is an erosion by the blur's support.
        dilate_kernel: dilation kernel range (None: always erode).
        blur_kernel: Gaussian blur kernel range.
        blur_sigma: Gaussian blur sigma range.
        blur_aspect: per-axis random scale of the kernels (SBI's random mask resize before blurring).
        blend_ratios: blending ratios r drawn uniformly; M is scaled by r.
        reference_size: image side the pixel sizes refer to.
    """

    hull_types: tuple[str, ...] = ("extended", "extended", "extended", "face")
    elastic_alpha: float = 50.0
    elastic_sigma: float = 7.0
    grid_scale: tuple[float, float] = (0.0, 0.0)
    grid_size: int = 4
    erode_probability: float = 1.0
    erode_kernel: tuple[int, int] = (5, 25)
    dilate_kernel: tuple[int, int] | None = None
    blur_kernel: tuple[int, int] = (5, 25)
    blur_sigma: tuple[float, float] = (5.0, 45.0)
    blur_aspect: tuple[float, float] = (0.8, 1.25)
    blend_ratios: tuple[float, ...] = SBI_BLEND_RATIOS
    reference_size: int = 256

    def __post_init__(self) -> None:
        for name in ("hull_types", "grid_scale", "erode_kernel", "dilate_kernel", "blur_kernel", "blur_sigma",
                     "blur_aspect", "blend_ratios"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(value))  # YAML lists -> tuples (hashable, frozen)
        _hulls(self.hull_types)
        _ratios(self.blend_ratios)
        for name in ("grid_scale", "erode_kernel", "dilate_kernel", "blur_kernel", "blur_sigma", "blur_aspect"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or value[0] > value[1] or value[0] < 0):
                raise ValueError(f"mask setting {name} must be a (low, high) pair with 0 <= low <= high, got {value}")
        for name in ("erode_kernel", "dilate_kernel", "blur_kernel"):
            value = getattr(self, name)
            if value is not None and value[0] < 1:
                raise ValueError(f"mask setting {name} must hold kernel sizes >= 1, got {value}")
        if self.elastic_alpha < 0 or self.elastic_sigma <= 0:
            raise ValueError(f"mask settings elastic_alpha >= 0 and elastic_sigma > 0 required, got "
                             f"{self.elastic_alpha} and {self.elastic_sigma}")
        if self.grid_scale[1] > 1 or not 2 <= self.grid_size <= 16:
            raise ValueError(f"mask settings grid_scale within [0, 1] and grid_size in 2..16 required, got "
                             f"{self.grid_scale} and {self.grid_size}")
        if not 0.0 <= self.erode_probability <= 1.0 or self.reference_size < 1:
            raise ValueError(f"mask settings erode_probability in [0, 1] and reference_size >= 1 required, got "
                             f"{self.erode_probability} and {self.reference_size}")


#: SBI's mask settings (the defaults of :class:`MaskSettings`).
SBI_MASK_SETTINGS = MaskSettings()

#: Face X-ray's (BI) mask settings: 4 hull types, piecewise-affine deformation with scale 1-15 % of the image,
#: erosion (kernel 1-21) or dilation (1-5) with equal odds, no blending ratio.
BI_MASK_SETTINGS = MaskSettings(hull_types=("face", "extended", "inner", "halves"), elastic_alpha=0.0,
                                grid_scale=(0.01, 0.15), grid_size=4, erode_probability=0.5, erode_kernel=(1, 21),
                                dilate_kernel=(1, 5), blur_kernel=(5, 25), blur_sigma=(3.0, 15.0),
                                blur_aspect=(0.8, 1.25), blend_ratios=(1.0,))


def mask_settings(value: MaskSettings | Mapping[str, Any] | None, default: MaskSettings) -> MaskSettings:
    """``value`` as :class:`MaskSettings`: None gives ``default``, a mapping overrides ``default``'s fields (so a
    partial ``mask: {blur_sigma: [5, 45]}`` in ``pseudo_fake_args`` keeps the other defaults of the transform)."""
    if value is None:
        return default
    if isinstance(value, MaskSettings):
        return value
    if isinstance(value, Mapping):
        known = [f.name for f in fields(MaskSettings)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"mask settings {unknown} unknown; MaskSettings has {known}")
        return replace(default, **dict(value))
    raise TypeError(f"mask must be MaskSettings, a mapping of its fields or None, got {type(value).__name__}")


@dataclass(frozen=True)
class MaskRecipe:
    """One draw of :class:`MaskSettings`: everything random about a mask, in pixels of the actual image."""

    hull_type: str
    control_offsets: np.ndarray  # (2, g, g) float32: dx, dy at the grid points spanning the image (pixels)
    morph: Literal["erode", "dilate", "none"]
    morph_kernel: tuple[int, int]  # (kx, ky), odd
    blur_kernel: tuple[int, int]  # (kx, ky), odd
    blur_sigma: tuple[float, float]  # (sx, sy)
    blend_ratio: float
    elastic_alpha: float = 0.0  # pixels (0: no elastic deformation)
    elastic_sigma: float = 1.0  # pixels
    elastic_seed: int = 0  # seed of the elastic noise field


def draw_mask_recipe(settings: MaskSettings, image_shape: tuple[int, ...], size_of_face: float,
                     py_random: random.Random, random_generator: np.random.Generator) -> MaskRecipe:
    """Draw every random choice of one blend mask (called from ``get_params_dependent_on_data``).

    ``size_of_face`` is kept for callers; the deformations are relative to the image, as in SBI and Face X-ray.
    """
    height, width = image_shape[:2]
    scale = min(height, width) / settings.reference_size
    aspect = (py_random.uniform(*settings.blur_aspect), py_random.uniform(*settings.blur_aspect))
    hull_type = settings.hull_types[py_random.randrange(len(settings.hull_types))]

    grid = settings.grid_size
    offsets = np.zeros((2, grid, grid), np.float32)
    if settings.grid_scale[1] > 0:
        jitter = py_random.uniform(*settings.grid_scale)
        offsets = random_generator.standard_normal((2, grid, grid)).astype(np.float32)
        offsets[0] *= np.float32(jitter * width)
        offsets[1] *= np.float32(jitter * height)
    elastic_alpha = settings.elastic_alpha * scale * scale
    elastic_sigma = settings.elastic_sigma * scale
    elastic_seed = int(random_generator.integers(2 ** 63)) if elastic_alpha > 0 else 0

    if settings.dilate_kernel is None or py_random.random() < settings.erode_probability:
        morph, k = "erode", py_random.randint(*settings.erode_kernel)
    else:
        morph, k = "dilate", py_random.randint(*settings.dilate_kernel)
    morph_kernel = (odd(k * scale * aspect[0]), odd(k * scale * aspect[1]))
    if morph_kernel == (1, 1):
        morph = "none"

    kb = py_random.randint(*settings.blur_kernel)
    sigma = py_random.uniform(*settings.blur_sigma)
    blur_kernel = (odd(kb * scale * aspect[0]), odd(kb * scale * aspect[1]))
    blur_sigma = (sigma * scale * aspect[0], sigma * scale * aspect[1])
    ratio = settings.blend_ratios[py_random.randrange(len(settings.blend_ratios))]
    return MaskRecipe(hull_type, offsets, morph, morph_kernel, blur_kernel, blur_sigma, float(ratio),
                      float(elastic_alpha), float(elastic_sigma), elastic_seed)


# ---------------------------------------------------------------------------------------------- rendering


def polygons_box(polygons: Sequence[np.ndarray]) -> Box:
    """Integer bounding box (x0, y0, x1, y1) of polygons, exclusive ends; may exceed the image."""
    points = np.concatenate(polygons)
    x0, y0 = np.floor(points.min(axis=0)).astype(int)
    x1, y1 = np.ceil(points.max(axis=0)).astype(int) + 1
    return int(x0), int(y0), int(x1), int(y1)


def mask_roi(image_shape: tuple[int, ...], box: Box, recipe: MaskRecipe, reach: int) -> Box:
    """The ROI outside which the rendered mask is exactly zero (clipped to the image): the hull box grown by the
    deformation's reach, the dilation and the blur's half-widths."""
    height, width = image_shape[:2]
    bx0, by0, bx1, by1 = box
    pad_x = reach + recipe.blur_kernel[0] // 2 + 1
    pad_y = reach + recipe.blur_kernel[1] // 2 + 1
    if recipe.morph == "dilate":
        pad_x += recipe.morph_kernel[0] // 2
        pad_y += recipe.morph_kernel[1] // 2
    return (max(bx0 - pad_x, 0), max(by0 - pad_y, 0), min(bx1 + pad_x, width), min(by1 + pad_y, height))


def linear_weights(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) piecewise-linear interpolation weights from ``size_in`` grid points spread evenly from
    the first to the last pixel: ``W @ v`` is the grid values ``v`` interpolated linearly to every pixel."""
    position = np.arange(size_out, dtype=np.float64) * ((size_in - 1) / max(size_out - 1, 1))
    base = np.minimum(np.floor(position).astype(int), size_in - 2)
    t = position - base
    weights = np.zeros((size_out, size_in), np.float64)
    rows = np.arange(size_out)
    weights[rows, base] = 1.0 - t
    weights[rows, base + 1] += t
    return weights.astype(np.float32)


def grid_fields(control_offsets: np.ndarray, image_shape: tuple[int, ...], roi: Box) -> list[np.ndarray]:
    """The grid displacement (control offsets interpolated over the whole image) on the ROI: [dx, dy]."""
    height, width = image_shape[:2]
    rx0, ry0, rx1, ry1 = roi
    g_y, g_x = control_offsets.shape[1:]
    w_y = linear_weights(height, g_y)[ry0:ry1]
    w_x = linear_weights(width, g_x)[rx0:rx1]
    return [w_y @ channel @ w_x.T for channel in control_offsets]


ELASTIC_CAP_STD = 6.0  # elastic displacements are clipped at 6 std (never reached in practice: p ~ 2e-9 a pixel)


def elastic_std(alpha: float, sigma: float) -> float:
    """Standard deviation of ``alpha * (G_sigma * U(-1, 1))`` per axis: alpha * sqrt(1/3 * 1 / (4 pi sigma^2))
    (the variance 1/3 of the uniform noise times the sum of the squared weights of a 2-D Gaussian)."""
    return alpha / (2.0 * math.sqrt(3.0 * math.pi) * sigma)


def elastic_reach(alpha: float, sigma: float) -> int:
    """Largest displacement (pixels, rounded up) of the clipped elastic field."""
    return math.ceil(ELASTIC_CAP_STD * elastic_std(alpha, sigma)) + 1


def elastic_fields(alpha: float, sigma: float, seed: int, roi: Box) -> list[np.ndarray]:
    """SBI's elastic displacement on the ROI: uniform(-1, 1) noise blurred by a Gaussian of ``sigma``, times
    ``alpha``, clipped to :func:`elastic_reach`; [dx, dy], float32 (ROI h, ROI w)."""
    rx0, ry0, rx1, ry1 = roi
    pad = math.ceil(4.0 * sigma)  # the blur's support: the noise around the ROI feeds its edge pixels
    shape = (ry1 - ry0 + 2 * pad, rx1 - rx0 + 2 * pad)
    noise = np.random.default_rng(seed).uniform(-1.0, 1.0, (2, *shape)).astype(np.float32)
    cap = float(elastic_reach(alpha, sigma) - 1)
    out = []
    for channel in noise:
        field = cv2.GaussianBlur(channel, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
        field = field[pad:pad + ry1 - ry0, pad:pad + rx1 - rx0] * np.float32(alpha)
        out.append(np.clip(field, -cap, cap))
    return out


def render_blend_mask(image_shape: tuple[int, ...], polygons: Sequence[np.ndarray],
                      recipe: MaskRecipe) -> tuple[np.ndarray, Box]:
    """Deformed, eroded/dilated, blurred hull mask on its ROI: (float32 (h, w) in [0, ratio], roi).

    The deformation samples ``mask(x + d(x))`` (``cv2.remap``, then threshold at 1/2) with ``d`` the sum of the
    grid displacement (BI) and the elastic displacement (SBI). If erosion leaves nothing (tiny face, big kernel)
    the un-eroded deformed hull is kept.
    """
    box = polygons_box(polygons)
    use_grid = bool(np.any(recipe.control_offsets))
    use_elastic = recipe.elastic_alpha > 0
    reach = math.ceil(float(np.abs(recipe.control_offsets).max())) + 1 if use_grid else 0
    if use_elastic:
        reach += elastic_reach(recipe.elastic_alpha, recipe.elastic_sigma)
    roi = mask_roi(image_shape, box, recipe, reach)
    rx0, ry0, rx1, ry1 = roi
    rw, rh = rx1 - rx0, ry1 - ry0
    if rw <= 0 or rh <= 0:
        return np.zeros((0, 0), np.float32), roi
    binary = np.zeros((rh, rw), np.uint8)
    origin = np.array([rx0, ry0], np.float32)
    for polygon in polygons:  # a few hulls, not pixels; 4 fractional bits for sub-pixel vertices
        vertices = np.round((polygon - origin) * 16.0).astype(np.int32)
        cv2.fillConvexPoly(binary, vertices, 255, lineType=cv2.LINE_8, shift=4)

    if use_grid or use_elastic:
        map_x = np.broadcast_to(np.arange(rw, dtype=np.float32)[None, :], (rh, rw)).copy()
        map_y = np.broadcast_to(np.arange(rh, dtype=np.float32)[:, None], (rh, rw)).copy()
        if use_grid:
            dx, dy = grid_fields(recipe.control_offsets, image_shape, roi)
            map_x += dx
            map_y += dy
        if use_elastic:
            dx, dy = elastic_fields(recipe.elastic_alpha, recipe.elastic_sigma, recipe.elastic_seed, roi)
            map_x += dx
            map_y += dy
        binary = cv2.remap(binary, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        cv2.threshold(binary, 127, 255, cv2.THRESH_BINARY, dst=binary)

    if recipe.morph != "none":
        kernel = np.ones((recipe.morph_kernel[1], recipe.morph_kernel[0]), np.uint8)
        morphed = cv2.erode(binary, kernel) if recipe.morph == "erode" else cv2.dilate(binary, kernel)
        if morphed.any():
            binary = morphed

    mask = binary.astype(np.float32)
    mask = cv2.GaussianBlur(mask, recipe.blur_kernel, sigmaX=recipe.blur_sigma[0], sigmaY=recipe.blur_sigma[1])
    peak = float(mask.max())
    if peak > 0:
        mask /= np.float32(peak)  # the peak becomes exactly 1, then exactly the ratio
        mask *= np.float32(recipe.blend_ratio)
    return mask, roi


def paste(patch: np.ndarray, roi: Box, image_shape: tuple[int, ...]) -> np.ndarray:
    """Full-frame float32 mask: zeros with ``patch`` at ``roi``."""
    full = np.zeros(image_shape[:2], np.float32)
    x0, y0, x1, y1 = roi
    if patch.size:
        full[y0:y1, x0:x1] = patch
    return full


def template_landmarks(size: int = 256, scale: float = 1.0, center: tuple[float, float] | None = None) -> np.ndarray:
    """A frontal 68-point iBUG layout for a square ``size`` crop (demos, tests and benchmarks only)."""
    cx, cy = center if center is not None else (size / 2.0, size * 0.52)
    s = size * 0.36 * scale
    phi = np.linspace(np.pi + 0.15, -0.15, 17)  # image left ear -> chin (point 8) -> image right ear
    jaw = np.stack([cx + s * 0.95 * np.cos(phi), cy - s * 0.3 + s * 1.15 * np.sin(phi)], axis=1)
    bx = np.linspace(-0.75, -0.15, 5)
    right_brow = np.stack([cx + s * bx, cy - s * (0.55 + 0.12 * np.sin(np.linspace(0, np.pi, 5)))], axis=1)
    left_brow = np.stack([cx - s * bx[::-1], right_brow[::-1, 1]], axis=1)
    bridge = np.stack([np.full(4, cx), cy - s * np.linspace(0.38, 0.02, 4)], axis=1)
    nostrils = np.stack([cx + s * np.linspace(-0.2, 0.2, 5), cy + s * np.array([0.1, 0.13, 0.15, 0.13, 0.1])], 1)

    def eye(ex: float) -> np.ndarray:
        angles = np.array([np.pi, 2.3, 0.85, 0.0, -0.85, -2.3])
        return np.stack([cx + s * (ex + 0.17 * np.cos(angles)), cy - s * (0.3 + 0.07 * np.sin(angles))], axis=1)

    outer = np.linspace(np.pi, -np.pi, 13)[:12]
    mouth_outer = np.stack([cx - s * 0.38 * np.cos(outer), cy + s * (0.45 - 0.14 * np.sin(outer))], axis=1)
    inner = np.linspace(np.pi, -np.pi, 9)[:8]
    mouth_inner = np.stack([cx - s * 0.25 * np.cos(inner), cy + s * (0.45 - 0.05 * np.sin(inner))], axis=1)
    points = np.concatenate([jaw, right_brow, left_brow, bridge, nostrils, eye(-0.45), eye(0.45),
                             mouth_outer, mouth_inner])
    return points.astype(np.float32)
