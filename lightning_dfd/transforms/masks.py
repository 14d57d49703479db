"""Blend-mask generator shared by SBI and BI: the deformed convex-hull mask M of LAA-Net Eq. (1).

Steps (SBI, Shiohara & Yamasaki 2022, §3.3 "mask generator"; Face X-ray, Li et al. 2020, §3.2):

1. a landmark hull (one of :data:`HULL_TYPES`, drawn at random),
2. an elastic deformation: a coarse grid of Gaussian control offsets, bicubically upsampled to a smooth
   displacement field and applied with ``cv2.remap``,
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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

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


@dataclass(frozen=True)
class MaskSettings:
    """Ranges the random mask is drawn from. Kernel sizes are pixels of a ``reference_size`` image and scale with
    the image (SBI blurs a mask resized to about 256 px)."""

    hull_types: tuple[str, ...]
    elastic_strength: tuple[float, float]  # std of control offsets, fraction of the face size
    elastic_grid: int
    erode_probability: float  # else dilate
    erode_kernel: tuple[int, int]
    dilate_kernel: tuple[int, int] | None
    blur_kernel: tuple[int, int]
    blur_sigma: tuple[float, float]
    blur_aspect: tuple[float, float]
    blend_ratios: tuple[float, ...]
    reference_size: int = 256


@dataclass(frozen=True)
class MaskRecipe:
    """One draw of :class:`MaskSettings`: everything random about a mask, in pixels of the actual image."""

    hull_type: str
    control_offsets: np.ndarray  # (2, g, g) float32: dx, dy at the control points (pixels)
    morph: Literal["erode", "dilate", "none"]
    morph_kernel: tuple[int, int]  # (kx, ky), odd
    blur_kernel: tuple[int, int]  # (kx, ky), odd
    blur_sigma: tuple[float, float]  # (sx, sy)
    blend_ratio: float


def draw_mask_recipe(settings: MaskSettings, image_shape: tuple[int, ...], size_of_face: float,
                     py_random: random.Random, random_generator: np.random.Generator) -> MaskRecipe:
    """Draw every random choice of one blend mask (called from ``get_params_dependent_on_data``)."""
    scale = min(image_shape[0], image_shape[1]) / settings.reference_size
    aspect = (py_random.uniform(*settings.blur_aspect), py_random.uniform(*settings.blur_aspect))
    hull_type = settings.hull_types[py_random.randrange(len(settings.hull_types))]

    strength = py_random.uniform(*settings.elastic_strength) * size_of_face
    grid = settings.elastic_grid
    offsets = random_generator.standard_normal((2, grid, grid)).astype(np.float32)
    np.clip(offsets, -3.0, 3.0, out=offsets)
    offsets *= strength

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
    return MaskRecipe(hull_type, offsets, morph, morph_kernel, blur_kernel, blur_sigma, float(ratio))


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


def cubic_weights(size_out: int, size_in: int) -> np.ndarray:
    """(size_out, size_in) matrix of bicubic (Keys, a = -0.75) resampling weights, pixel centres aligned and
    edge samples replicated: ``W @ v`` upsamples ``v`` like ``cv2.resize(..., INTER_CUBIC)``."""
    a = -0.75
    source = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    base = np.floor(source)
    t = source - base
    taps = [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1]
    taps.append(1.0 - taps[0] - taps[1] - taps[2])
    weights = np.zeros((size_out, size_in), np.float64)
    rows = np.arange(size_out)
    for offset, tap in zip((-1, 0, 1, 2), taps):  # 4 taps, each vectorised over all output pixels
        np.add.at(weights, (rows, np.clip(base.astype(int) + offset, 0, size_in - 1)), tap)
    return weights.astype(np.float32)


def box_fields(control_offsets: np.ndarray, box: Box) -> list[np.ndarray]:
    """Control offsets bicubically upsampled to the hull box: [dx, dy], each float32 (box h, box w)."""
    bw, bh = box[2] - box[0], box[3] - box[1]
    g_y, g_x = control_offsets.shape[1:]
    w_y, w_x = cubic_weights(bh, g_y), cubic_weights(bw, g_x)
    return [w_y @ channel @ w_x.T for channel in control_offsets]


def roi_fields(fields: list[np.ndarray], box: Box, roi: Box) -> list[np.ndarray]:
    """The box fields on the ROI, extended outside the box by their edge values (replicate)."""
    bx0, by0, bx1, by1 = box
    rx0, ry0, rx1, ry1 = roi
    cx0, cy0 = max(rx0, bx0) - bx0, max(ry0, by0) - by0
    cx1, cy1 = min(rx1, bx1) - bx0, min(ry1, by1) - by0
    out = []
    for field in fields:
        if cx1 <= cx0 or cy1 <= cy0:  # the box misses the image entirely
            out.append(np.zeros((ry1 - ry0, rx1 - rx0), np.float32))
            continue
        field = field[cy0:cy1, cx0:cx1]
        top, left = max(by0 - ry0, 0), max(bx0 - rx0, 0)
        bottom, right = (ry1 - ry0) - top - field.shape[0], (rx1 - rx0) - left - field.shape[1]
        out.append(cv2.copyMakeBorder(field, top, bottom, left, right, cv2.BORDER_REPLICATE))
    return out


def render_blend_mask(image_shape: tuple[int, ...], polygons: Sequence[np.ndarray],
                      recipe: MaskRecipe) -> tuple[np.ndarray, Box]:
    """Deformed, eroded/dilated, blurred hull mask on its ROI: (float32 (h, w) in [0, ratio], roi).

    The deformation samples ``mask(x + d(x))`` (``cv2.remap``) with ``d`` the upsampled control offsets.
    If erosion leaves nothing (tiny face, big kernel) the un-eroded deformed hull is kept.
    """
    box = polygons_box(polygons)
    fields = box_fields(recipe.control_offsets, box) if np.any(recipe.control_offsets) else []
    reach = math.ceil(max((float(np.abs(f).max()) for f in fields), default=0.0)) + 1
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

    if fields:
        map_x, map_y = roi_fields(fields, box, roi)
        map_x += np.arange(rw, dtype=np.float32)[None, :]
        map_y += np.arange(rh, dtype=np.float32)[:, None]
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
