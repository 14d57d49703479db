"""Self-Blended Images (SBI; Shiohara & Yamasaki, CVPR 2022) as an albumentations 2.0.8 transform.

A real crop I becomes a pseudo-fake by LAA-Net Eq. (1), ``I_M = M * I_F + (1 - M) * I_B``, where I_F (source)
and I_B (target) are two copies of I:

* source-target generator: one copy, drawn at random, gets colour (RGB shift, brightness/contrast, optional HSV
  shift) and frequency (nearest down- then linear up-sampling, or sharpening) augmentations; the source is then
  resized and translated (independent x/y scale, small shift) so the blended face is slightly misaligned;
* mask generator (:mod:`lightning_dfd.transforms.masks`, settings :class:`~lightning_dfd.transforms.masks.
  MaskSettings`): landmark hull warped with the source's affine, SBI's elastic jitter (albumentations
  ``ElasticTransform(alpha=50, sigma=7)`` statistics), erosion, random anisotropic Gaussian blur, random blending
  ratio.

Outputs: ``image`` (the pseudo-fake, uint8), ``mask`` (M, float32 (H, W) in [0, 1]), ``label = 1``,
``background`` (I_B: the real crop the fake was made from, augmented exactly as the fake's background, so real and
fake differ only where M > 0, as in SBI's released pairs) and the unchanged ``keypoints``.

How a DataModule uses it (SBI trains on real frames only, every batch holds each real with its own fake)::

    pair = PseudoFakePair(SelfBlendedImage(), shared=A.Compose([...], keypoint_params=...),
                          targets=LaaNetTargets(out_size=96))
    real, fake = pair({"image": crop, "landmarks": lm, "video_id": vid})  # in Dataset.__getitem__
    DataLoader(dataset, collate_fn=collate_pairs, worker_init_fn=worker_init_fn)  # reals first, then fakes

The random draws live in ``get_params_dependent_on_data`` (``self.py_random`` / ``self.random_generator``); every
``apply*`` is a pure function of its input and those parameters. Work is confined to the face's region of interest
(see :mod:`~lightning_dfd.transforms.masks`); full-frame work is only the augmented target when it is the target
that gets augmented.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import albumentations as A
import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field
from torch.utils.data import default_collate

from lightning_dfd.batch import IMAGE, LABEL, LANDMARKS, MASK, REAL, VIDEO_ID
from lightning_dfd.transforms.masks import (
    SBI_BLEND_RATIOS,
    SBI_MASK_SETTINGS,
    Box,
    FloatRange,
    MaskRecipe,
    MaskSettings,
    check_landmarks,
    draw_mask_recipe,
    face_size,
    hull_polygons,
    mask_settings,
    paste,
    render_blend_mask,
    transform_points,
)

__all__ = ["SBI_BLEND_RATIOS", "PseudoFakePair", "SelfBlendedImage", "SourceTargetParams", "augment_copy", "blend",
           "blend_uint8", "collate_pairs", "source_affine", "source_region", "warp_patch"]


def blend(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """LAA-Net Eq. (1): ``M * I_F + (1 - M) * I_B`` in float32; ``mask`` is (H, W) or broadcastable."""
    m = np.asarray(mask, np.float32)
    if m.ndim == foreground.ndim - 1:
        m = m[..., None]
    out = foreground.astype(np.float32)
    out *= m
    rest = background.astype(np.float32)
    rest *= np.float32(1.0) - m
    out += rest
    return out


def blend_uint8(foreground: np.ndarray, background: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Eq. (1) rounded to the nearest integer and saturated to uint8."""
    return cv2.convertScaleAbs(blend(foreground, background, mask))


@dataclass(frozen=True)
class SourceTargetParams:
    """One draw of SBI's source-target generator."""

    augment_source: bool  # else the target (background) copy is augmented
    rgb_shift: tuple[int, int, int]
    contrast: float  # multiplicative factor alpha
    brightness: float  # additive, in units of 255
    hsv_shift: tuple[int, int, int]  # hue (OpenCV degrees / 2), saturation, value
    frequency: Literal["downscale", "sharpen", "none"]
    downscale_factor: int
    sharpen_alpha: float
    sharpen_lightness: float


def colour_matrix(params: SourceTargetParams) -> np.ndarray:
    """3x4 per-channel affine map ``alpha * (x + shift_c) + 255 * beta`` (RGB shift then brightness/contrast,
    composed into one map; saturation happens once, at the end)."""
    shift = np.asarray(params.rgb_shift, np.float32)
    matrix = np.zeros((3, 4), np.float32)
    matrix[[0, 1, 2], [0, 1, 2]] = params.contrast
    matrix[:, 3] = params.contrast * shift + 255.0 * params.brightness
    return matrix


def _shift_hsv(image: np.ndarray, shift: tuple[int, int, int]) -> np.ndarray:
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    values = np.arange(256, dtype=np.int32)
    lut = np.stack([np.mod(values + shift[0], 180), np.clip(values + shift[1], 0, 255),
                    np.clip(values + shift[2], 0, 255)], axis=1).astype(np.uint8).reshape(256, 1, 3)
    return cv2.cvtColor(cv2.LUT(hsv, lut), cv2.COLOR_HSV2RGB)


def augment_copy(image: np.ndarray, params: SourceTargetParams) -> np.ndarray:
    """SBI's colour then frequency augmentation of one copy (uint8 HWC RGB in and out)."""
    out = cv2.transform(image, colour_matrix(params))
    if any(params.hsv_shift):
        out = _shift_hsv(out, params.hsv_shift)
    if params.frequency == "downscale":
        h, w = out.shape[:2]
        small = cv2.resize(out, (max(w // params.downscale_factor, 1), max(h // params.downscale_factor, 1)),
                           interpolation=cv2.INTER_NEAREST)
        out = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    elif params.frequency == "sharpen":
        a, lightness = params.sharpen_alpha, params.sharpen_lightness
        kernel = np.full((3, 3), -a, np.float32)
        kernel[1, 1] = (1.0 - a) + a * (8.0 + lightness)
        out = cv2.filter2D(out, -1, kernel)
    return out


def source_affine(scale: tuple[float, float], shift: tuple[float, float], image_shape: tuple[int, ...]) -> np.ndarray:
    """2x3 matrix scaling about the image centre by (sx, sy) then translating by (tx, ty) pixels."""
    h, w = image_shape[:2]
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    sx, sy = scale
    return np.array([[sx, 0.0, cx - sx * cx + shift[0]], [0.0, sy, cy - sy * cy + shift[1]]], np.float64)


def source_region(matrix: np.ndarray, roi: Box, image_shape: tuple[int, ...], margin: int) -> Box:
    """Box of the source pixels that ``cv2.warpAffine(., matrix)`` reads to fill ``roi`` (+ ``margin``)."""
    h, w = image_shape[:2]
    inverse = cv2.invertAffineTransform(matrix)
    rx0, ry0, rx1, ry1 = roi
    corners = np.array([[rx0, ry0], [rx1, ry0], [rx0, ry1], [rx1, ry1]], np.float64)
    mapped = corners @ inverse[:, :2].T + inverse[:, 2]
    x0 = int(np.clip(np.floor(mapped[:, 0].min()) - margin, 0, w))
    y0 = int(np.clip(np.floor(mapped[:, 1].min()) - margin, 0, h))
    x1 = int(np.clip(np.ceil(mapped[:, 0].max()) + margin, 0, w))
    y1 = int(np.clip(np.ceil(mapped[:, 1].max()) + margin, 0, h))
    if x1 - x0 < 2 or y1 - y0 < 2:  # the ROI maps outside the source: use the whole frame
        return 0, 0, w, h
    return x0, y0, x1, y1


def warp_patch(patch: np.ndarray, origin: tuple[int, int], matrix: np.ndarray, roi: Box) -> np.ndarray:
    """``cv2.warpAffine(image, matrix)`` evaluated on ``roi`` from the crop ``patch`` of ``image`` at ``origin``.

    Equal to the full-frame warp (up to warpAffine's 1/32-pixel fixed-point rounding: rare +-1 differences)
    wherever the patch holds every pixel read (see :func:`source_region`); border pixels are reflected
    (BORDER_REFLECT_101) as in a full-frame warp when the patch touches the image edge.
    """
    rx0, ry0, rx1, ry1 = roi
    local = matrix.astype(np.float64).copy()
    local[:, 2] += local[:, :2] @ np.array(origin, np.float64) - np.array([rx0, ry0], np.float64)
    return cv2.warpAffine(patch, local, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


class _BlendTransform(A.DualTransform):
    """Shared plumbing of SBI and BI: emits ``mask``, ``label`` and ``background`` next to ``image``."""

    def __call__(self, *args: Any, force_apply: bool = False, **data: Any) -> dict[str, Any]:
        if "image" not in data:
            raise ValueError(f"{type(self).__name__} needs image=<HWC uint8 array> and keypoints=<(68, 2) landmarks>")
        image = data["image"]
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{type(self).__name__} expects an RGB uint8 (H, W, 3) image, got "
                             f"{image.dtype} {image.shape}; load crops with cv2/PIL as uint8 and convert to RGB.")
        if data.get("keypoints") is None:
            check_landmarks(None)  # raises the error that says where landmarks come from
        data.setdefault("mask", np.zeros(image.shape[:2], np.float32))
        data.setdefault("background", image)
        result = super().__call__(*args, force_apply=force_apply, **data)
        result["label"] = 1 if self.params else result.get("label", 0)
        return result

    @property
    def targets_as_params(self) -> list[str]:
        return ["keypoints"]

    def add_targets(self, additional_targets: dict[str, str]) -> None:
        """Keep the native ``background`` target when a Compose declares ``background`` as an extra image."""
        super().add_targets({k: v for k, v in additional_targets.items() if k not in self.targets})

    @property
    def targets(self) -> dict[str, Any]:
        return {"image": self.apply, "background": self.apply_to_background, "mask": self.apply_to_mask,
                "keypoints": self.apply_to_keypoints}

    def apply_to_mask(self, mask: np.ndarray, mask_roi: np.ndarray, roi: Box, **params: Any) -> np.ndarray:
        """The blend mask M replaces the (placeholder) input mask."""
        return paste(mask_roi, roi, mask.shape)

    def apply_to_keypoints(self, keypoints: np.ndarray, **params: Any) -> np.ndarray:
        """The background keeps its geometry, so landmarks are unchanged."""
        return keypoints

    def apply_to_background(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return img


class SelfBlendedImage(_BlendTransform):
    """SBI pseudo-fake (Shiohara & Yamasaki 2022, §3.2-3.3) blended by LAA-Net Eq. (1).

    Args:
        source_probability: probability that the source copy (rather than the target) is augmented.
        rgb_shift_limit: per-channel shift range +-limit (uint8 units), applied with ``rgb_shift_probability``.
        rgb_shift_probability: probability of the RGB shift.
        brightness_limit: additive brightness range +-limit (fraction of 255).
        contrast_limit: multiplicative contrast range 1 +- limit.
        hsv_shift_limit: (hue, saturation, value) shift limits; SBI's released +-0.3 rounds to no change on uint8,
            hence 0 (skipped) by default.
        frequency_probability: probability of a frequency augmentation (downscale or sharpen, equally likely).
        downscale_factors: down-sampling factors (nearest down, linear up).
        sharpen_alpha: sharpen blending range.
        sharpen_lightness: sharpen lightness range.
        scale_range: independent x and y scale of the source.
        translate_fraction: maximum source shift as (x, y) fractions of the image width and height.
        mask: the mask generator's settings (:class:`~lightning_dfd.transforms.masks.MaskSettings`, default SBI's);
            a mapping of some of its fields overrides just those (``pseudo_fake_args: {mask: {elastic_alpha: 0}}``).
        p: probability of producing a pseudo-fake (else the input passes unchanged with label 0).
    """

    class InitSchema(BaseTransformInitSchema):
        source_probability: float = Field(ge=0, le=1)
        rgb_shift_limit: int = Field(ge=0, le=255)
        rgb_shift_probability: float = Field(ge=0, le=1)
        brightness_limit: float = Field(ge=0, le=1)
        contrast_limit: float = Field(ge=0, le=1)
        hsv_shift_limit: tuple[Annotated[int, Field(ge=0, le=90)], Annotated[int, Field(ge=0, le=255)],
                               Annotated[int, Field(ge=0, le=255)]]
        frequency_probability: float = Field(ge=0, le=1)
        downscale_factors: tuple[Annotated[int, Field(ge=2, le=16)], ...] = Field(min_length=1)
        sharpen_alpha: FloatRange
        sharpen_lightness: FloatRange
        scale_range: FloatRange
        translate_fraction: tuple[Annotated[float, Field(ge=0, le=0.5)], Annotated[float, Field(ge=0, le=0.5)]]
        mask: Any  # MaskSettings, a mapping of its fields or None: validated by masks.mask_settings

    def __init__(
        self,
        source_probability: float = 0.5,
        rgb_shift_limit: int = 20,
        rgb_shift_probability: float = 0.3,
        brightness_limit: float = 0.1,
        contrast_limit: float = 0.1,
        hsv_shift_limit: tuple[int, int, int] = (0, 0, 0),
        frequency_probability: float = 1.0,
        downscale_factors: tuple[int, ...] = (2, 4),
        sharpen_alpha: tuple[float, float] = (0.2, 0.5),
        sharpen_lightness: tuple[float, float] = (0.5, 1.0),
        scale_range: tuple[float, float] = (0.95, 1 / 0.95),
        translate_fraction: tuple[float, float] = (0.03, 0.015),
        mask: MaskSettings = SBI_MASK_SETTINGS,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.source_probability = source_probability
        self.rgb_shift_limit = rgb_shift_limit
        self.rgb_shift_probability = rgb_shift_probability
        self.brightness_limit = brightness_limit
        self.contrast_limit = contrast_limit
        self.hsv_shift_limit = tuple(hsv_shift_limit)
        self.frequency_probability = frequency_probability
        self.downscale_factors = tuple(downscale_factors)
        self.sharpen_alpha = tuple(sharpen_alpha)
        self.sharpen_lightness = tuple(sharpen_lightness)
        self.scale_range = tuple(scale_range)
        self.translate_fraction = tuple(translate_fraction)
        self.mask_settings = mask_settings(mask, SBI_MASK_SETTINGS)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("source_probability", "rgb_shift_limit", "rgb_shift_probability", "brightness_limit",
                "contrast_limit", "hsv_shift_limit", "frequency_probability", "downscale_factors", "sharpen_alpha",
                "sharpen_lightness", "scale_range", "translate_fraction")

    def draw_source_target(self) -> SourceTargetParams:
        """Random draws of the source-target generator (from ``self.py_random``)."""
        rnd = self.py_random
        if rnd.random() < self.rgb_shift_probability:
            shift = tuple(rnd.randint(-self.rgb_shift_limit, self.rgb_shift_limit) for _ in range(3))
        else:
            shift = (0, 0, 0)
        contrast = 1.0 + rnd.uniform(-self.contrast_limit, self.contrast_limit)
        brightness = rnd.uniform(-self.brightness_limit, self.brightness_limit)
        hsv = tuple(rnd.randint(-limit, limit) for limit in self.hsv_shift_limit)
        frequency: Literal["downscale", "sharpen", "none"] = "none"
        if rnd.random() < self.frequency_probability:
            frequency = "downscale" if rnd.random() < 0.5 else "sharpen"
        return SourceTargetParams(
            augment_source=rnd.random() < self.source_probability, rgb_shift=shift, contrast=contrast,
            brightness=brightness, hsv_shift=hsv, frequency=frequency,
            downscale_factor=self.downscale_factors[rnd.randrange(len(self.downscale_factors))],
            sharpen_alpha=rnd.uniform(*self.sharpen_alpha), sharpen_lightness=rnd.uniform(*self.sharpen_lightness))

    def draw(self, shape: tuple[int, ...], landmarks: np.ndarray) -> tuple[SourceTargetParams, np.ndarray, MaskRecipe]:
        """Every random choice of one SBI sample: source-target draw, the source's affine, the mask recipe."""
        source_target = self.draw_source_target()
        rnd = self.py_random
        scale = (rnd.uniform(*self.scale_range), rnd.uniform(*self.scale_range))
        shift = (rnd.uniform(-1, 1) * self.translate_fraction[0] * shape[1],
                 rnd.uniform(-1, 1) * self.translate_fraction[1] * shape[0])
        affine = source_affine(scale, shift, shape)
        recipe = draw_mask_recipe(self.mask_settings, shape, face_size(landmarks), rnd, self.random_generator)
        return source_target, affine, recipe

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        shape = params["shape"]
        landmarks = check_landmarks(data.get("keypoints"))
        source_target, affine, recipe = self.draw(shape, landmarks)
        # the mask follows the source: hull vertices mapped by the source's affine (exact for polygons)
        polygons = [transform_points(p, affine) for p in hull_polygons(landmarks, recipe.hull_type)]
        mask_roi, roi = render_blend_mask(shape, polygons, recipe)
        return {"source_target": source_target, "affine": affine, "mask_roi": mask_roi, "roi": roi,
                "recipe": recipe}

    def apply(self, img: np.ndarray, source_target: SourceTargetParams, affine: np.ndarray, mask_roi: np.ndarray,
              roi: Box, **params: Any) -> np.ndarray:
        """Eq. (1) on the ROI: M * affine(source) + (1 - M) * target."""
        out = img.copy() if source_target.augment_source else augment_copy(img, source_target)
        background = out
        if mask_roi.size == 0:
            return out
        # warp margin 3 px; an augmented patch also needs the downscale block (<= 16) and the sharpen radius
        margin = 3 + (max(self.downscale_factors) + 1 if source_target.augment_source else 0)
        sx0, sy0, sx1, sy1 = source_region(affine, roi, img.shape, margin)
        patch = img[sy0:sy1, sx0:sx1]
        if source_target.augment_source:
            patch = augment_copy(np.ascontiguousarray(patch), source_target)
        foreground = warp_patch(patch, (sx0, sy0), affine, roi)
        x0, y0, x1, y1 = roi
        out[y0:y1, x0:x1] = blend_uint8(foreground, background[y0:y1, x0:x1], mask_roi)
        return out

    def apply_to_background(self, img: np.ndarray, source_target: SourceTargetParams, **params: Any) -> np.ndarray:
        """I_B: the target copy, augmented when the generator picked the target."""
        return img if source_target.augment_source else augment_copy(img, source_target)


def collate_pairs(batch: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> dict[str, Any]:
    """Collate (real, fake) pairs into one batch: all reals first, then their fakes in the same order (SBI)."""
    reals = [real for real, _ in batch]
    fakes = [fake for _, fake in batch]
    return default_collate(reals + fakes)


class PseudoFakePair:
    """``sample -> (real, fake)``: a blending transform plus augmentations shared by both halves of the pair.

    Args:
        blend: :class:`SelfBlendedImage` or :class:`~lightning_dfd.transforms.blended.BlendedImage`.
        shared: albumentations ``Compose`` applied once to both images with the same parameters (flip, crop,
            colour jitter, JPEG ...); give it ``keypoint_params=A.KeypointParams("xy", remove_invisible=False)``
            to move the landmarks too. The pair's fake image and mask travel as additional targets
            ``fake_image`` / ``fake_mask``.
        targets: optional :class:`~lightning_dfd.transforms.targets.LaaNetTargets` adding heatmap/consistency.
        identity_key: sample key naming the identity (BI excludes it when searching a foreground face).

    A sample is a dict with ``image`` (HWC uint8 RGB) and ``landmarks`` ((68, 2), crop coordinates); other keys
    are copied to both halves. The real half has ``label = 0`` and a zero ``mask``, the fake ``label = 1`` and M;
    masks come out as (1, H, W). End ``shared`` with ``A.Normalize(), ToTensorV2()`` for CHW float tensors.
    """

    def __init__(self, blend: A.DualTransform, shared: A.Compose | None = None,
                 targets: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None, identity_key: str = VIDEO_ID):
        self.blend = blend
        self.shared = shared
        if shared is not None:
            shared.add_targets({"fake_image": "image", "fake_mask": "mask"})
        self.targets = targets
        self.identity_key = identity_key

    def __call__(self, sample: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        if IMAGE not in sample or LANDMARKS not in sample:
            raise ValueError(f"PseudoFakePair needs sample['{IMAGE}'] and sample['{LANDMARKS}'] (68 x 2); the "
                             f"manifest must carry landmarks (preprocess with a landmark backend).")
        landmarks = check_landmarks(sample[LANDMARKS], f"sample['{LANDMARKS}']")
        extra = {"identity": sample[self.identity_key]} if self.identity_key in sample else {}
        made = self.blend(image=sample[IMAGE], keypoints=landmarks, **extra)
        real_image, fake_image = made["background"], made["image"]
        real_mask, fake_mask = np.zeros(real_image.shape[:2], np.float32), made["mask"]
        if self.shared is not None:
            data = {"image": real_image, "fake_image": fake_image, "mask": real_mask, "fake_mask": fake_mask}
            if "keypoints" in self.shared.processors:
                data["keypoints"] = landmarks
            out = self.shared(**data)
            real_image, fake_image = out["image"], out["fake_image"]
            real_mask, fake_mask = out["mask"], out["fake_mask"]
            landmarks = np.asarray(out.get("keypoints", landmarks), np.float32)
        real_mask, fake_mask = real_mask[None], fake_mask[None]  # (1, H, W), the sample-dict contract
        base = {k: v for k, v in sample.items() if k not in (IMAGE, LANDMARKS, MASK, LABEL)}
        real = {**base, IMAGE: real_image, MASK: real_mask, LABEL: REAL, LANDMARKS: landmarks}
        fake = {**base, IMAGE: fake_image, MASK: fake_mask, LABEL: made["label"], LANDMARKS: landmarks}
        if self.targets is not None:
            real, fake = self.targets(real), self.targets(fake)
        return real, fake

