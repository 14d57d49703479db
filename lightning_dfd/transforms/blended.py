"""Blended Images (BI; Face X-ray, Li et al., CVPR 2020, §3.2) as an albumentations 2.0.8 transform.

A real crop I_B (background) is blended by LAA-Net Eq. (1) with the face I_F of *another identity* whose landmarks
are nearest to I_B's (total Euclidean distance over the 68 points, searched in a :class:`LandmarkIndex` built once
per dataset). I_F is resized to I_B's size (or aligned to I_B's landmarks by a least-squares similarity or affine
transform) and colour-corrected to I_B inside the mask (per-channel mean, or mean and standard deviation, weighted
by M). The mask comes
from the shared generator (:mod:`lightning_dfd.transforms.masks`) with Face X-ray's settings
(:data:`~lightning_dfd.transforms.masks.BI_MASK_SETTINGS`): random hull type, piecewise-affine deformation (a 4 x 4
grid over the image, points moved by N(0, (s * side)^2), s drawn from 1-15 %, as imgaug's
``PiecewiseAffine(scale=(0.01, 0.15))`` of the released code), random erosion (kernel 1-21) or dilation (1-5),
random Gaussian blur.

Differences from the released BI generator (LAA-Net ``package_utils/bi_online_generation.py``, after Face X-ray):

* the released code softens the mask by *feathering* (weights = distance inside the hull / (0.2 x face size),
  clipped to 1); here the shared Gaussian blur of the SBI mask generator is used;
* the released foreground is only resized to the background's size (``alignment: none``, the default); a
  least-squares ``similarity`` or ``affine`` alignment of the landmarks is one key away;
* the released colour correction shifts the per-channel mean only (``colour_correction: mean``, the default);
  ``mean_std`` also matches the standard deviation;
* the released code blends at a random down-scaled size (h/2 to h) and, half of the time, down- and up-samples the
  result again (h/4 to h, bilinear or nearest); neither is done here (the shared augmentations of the DataModule
  cover resolution changes);
* the deformation is piecewise bilinear on the grid cells where imgaug's is piecewise affine on triangles.

Call it like SBI: ``BlendedImage(index)(image=crop, keypoints=landmarks, identity=video_or_subject_id)``; it emits
``image`` (the blend), ``mask`` (M), ``label = 1``, ``background`` (I_B, unchanged) and the unchanged ``keypoints``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema
from pydantic import Field

from lightning_dfd.transforms.masks import (
    BI_MASK_SETTINGS,
    Box,
    MaskSettings,
    check_landmarks,
    draw_mask_recipe,
    face_size,
    hull_polygons,
    mask_settings,
    render_blend_mask,
)
from lightning_dfd.transforms.self_blended import _BlendTransform, blend_uint8, warp_patch

__all__ = ["BlendedImage", "LandmarkIndex", "affine_transform", "colour_transfer", "similarity_transform"]


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping ``source`` onto ``target``
    points (Umeyama 1991, reflection excluded)."""
    src = np.asarray(source, np.float64)
    dst = np.asarray(target, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    src0, dst0 = src - mu_s, dst - mu_d
    covariance = dst0.T @ src0 / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ d @ vt
    variance = (src0 ** 2).sum() / len(src)
    scale = float(np.trace(np.diag(singular) @ d) / variance) if variance > 0 else 1.0
    translation = mu_d - scale * rotation @ mu_s
    return np.hstack([scale * rotation, translation[:, None]])


def affine_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """2x3 least-squares affine transform mapping ``source`` onto ``target`` points."""
    src = np.asarray(source, np.float64)
    design = np.hstack([src, np.ones((len(src), 1))])
    solution, *_ = np.linalg.lstsq(design, np.asarray(target, np.float64), rcond=None)
    return solution.T


def colour_transfer(foreground: np.ndarray, background: np.ndarray, weights: np.ndarray,
                    mode: Literal["mean_std", "mean", "none"] = "mean_std") -> np.ndarray:
    """Shift (and scale) each channel of ``foreground`` so its ``weights``-weighted mean (and std) match the
    background's: Face X-ray's colour correction. float32 out."""
    fg = foreground.astype(np.float32)
    if mode == "none":
        return fg
    w = weights.astype(np.float64).reshape(-1)
    total = w.sum()
    if total <= 0:
        return fg
    f = fg.reshape(-1, fg.shape[-1]).astype(np.float64)
    b = background.reshape(-1, background.shape[-1]).astype(np.float64)
    mean_f, mean_b = w @ f / total, w @ b / total
    if mode == "mean":
        gain = np.ones_like(mean_f)
    else:
        std_f = np.sqrt(np.maximum(w @ (f - mean_f) ** 2 / total, 1e-6))
        std_b = np.sqrt(np.maximum(w @ (b - mean_b) ** 2 / total, 1e-6))
        gain = std_b / std_f
    corrected = (fg - mean_f.astype(np.float32)) * gain.astype(np.float32) + mean_b.astype(np.float32)
    return np.clip(corrected, 0, 255)


class LandmarkIndex:
    """Landmarks of every real crop of a dataset, built once, searched for BI's foreground faces.

    Args:
        landmarks: (N, 68, 2) landmarks in crop coordinates (all crops the same size, as preprocess writes them).
        identities: N identity names (subject, or video id when the subject is unknown); the search skips the
            query's own identity.
        images: N image file paths (RGB crops) or in-memory (H, W, 3) uint8 arrays.
    """

    def __init__(self, landmarks: np.ndarray, identities: Sequence[str],
                 images: Sequence[str | os.PathLike | np.ndarray]):
        lm = np.asarray(landmarks, np.float32)
        if lm.ndim != 3 or lm.shape[1] < 68 or lm.shape[2] != 2:
            raise ValueError(f"LandmarkIndex needs (N, 68, 2) landmarks, got {lm.shape}")
        if not (len(lm) == len(identities) == len(images)):
            raise ValueError(f"LandmarkIndex: {len(lm)} landmarks, {len(identities)} identities and {len(images)} "
                             f"images must have the same length")
        if len(lm) == 0:
            raise ValueError("LandmarkIndex is empty: BI needs real crops with landmarks (check the manifest)")
        self.landmarks = np.ascontiguousarray(lm[:, :68])
        self.identities = [str(i) for i in identities]
        self._names, self._codes = np.unique(np.asarray(self.identities), return_inverse=True)
        self.images = list(images)

    @classmethod
    def from_manifest(cls, manifest: Any, root: str | os.PathLike, identity_column: str = "subject",
                      fallback_identity_column: str = "video_id") -> LandmarkIndex:
        """Index the real (label 0), ``status == 'ok'`` rows with landmarks of a manifest DataFrame.

        Paths are relative to ``root`` (the manifest's directory); the identity is ``identity_column`` where set,
        else ``fallback_identity_column``.
        """
        frame = manifest
        if "status" in frame:
            frame = frame[frame["status"] == "ok"]
        if "label" in frame:
            frame = frame[frame["label"] == 0]
        frame = frame[frame["landmarks"].map(lambda v: v is not None and len(v) >= 136)]
        if len(frame) == 0:
            raise ValueError(f"no real crops with 68 landmarks in the manifest under {root}: run "
                             f"`python -m lightning_dfd preprocess` with a landmark backend first")
        landmarks = np.stack([np.asarray(v, np.float32)[:136].reshape(68, 2) for v in frame["landmarks"]])
        identity = frame[fallback_identity_column].astype(str)
        if identity_column in frame:
            primary = frame[identity_column].fillna("").astype(str)
            identity = primary.where(primary != "", identity)
        paths = [str(Path(root) / p) for p in frame["path"]]
        return cls(landmarks, identity.tolist(), paths)

    def __len__(self) -> int:
        return len(self.landmarks)

    def distances(self, query: np.ndarray) -> np.ndarray:
        """Total Euclidean distance ``sum_k ||l_k - q_k||`` from ``query`` (68, 2) to every indexed face."""
        return np.linalg.norm(self.landmarks - np.asarray(query, np.float32)[None], axis=2).sum(axis=1)

    def nearest(self, query: np.ndarray, exclude_identity: str, k: int = 1) -> np.ndarray:
        """Indices of the ``k`` nearest faces of identities other than ``exclude_identity``, nearest first."""
        distances = self.distances(query).astype(np.float64)
        position = np.searchsorted(self._names, str(exclude_identity))
        if position < len(self._names) and self._names[position] == str(exclude_identity):
            distances[self._codes == position] = np.inf
        allowed = int(np.isfinite(distances).sum())
        if allowed == 0:
            raise ValueError(f"LandmarkIndex holds no identity other than {exclude_identity!r}; BI needs crops of "
                             f"at least two identities")
        k = min(k, allowed)
        candidates = np.argpartition(distances, k - 1)[:k] if k < len(distances) else np.arange(len(distances))
        candidates = candidates[np.isfinite(distances[candidates])]
        return candidates[np.argsort(distances[candidates], kind="stable")]

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 crop ``i`` (read from disk when the index holds paths)."""
        item = self.images[i]
        if isinstance(item, np.ndarray):
            return item
        bgr = cv2.imread(str(item), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"BI foreground {item} cannot be read; re-run preprocess or drop it from the "
                                    f"manifest")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class BlendedImage(_BlendTransform):
    """BI pseudo-fake (Face X-ray) blended by LAA-Net Eq. (1) with the nearest-landmark face of another identity.

    Args:
        index: the dataset's :class:`LandmarkIndex` (real crops).
        top_k: the foreground is drawn uniformly among the ``top_k`` nearest other-identity faces (1: the nearest).
        alignment: ``none`` (the released code: the foreground crop is only resized to the background's size; the
            nearest-landmark search already pairs similar poses), or a ``similarity`` / ``affine`` least-squares
            fit of the foreground landmarks onto the background's.
        colour_correction: ``mean`` (the released code: per-channel mean shift inside the mask), ``mean_std``
            (mean and standard deviation) or ``none``.
        mask: the mask generator's settings (:class:`~lightning_dfd.transforms.masks.MaskSettings`); default
            :data:`~lightning_dfd.transforms.masks.BI_MASK_SETTINGS` (Face X-ray's); a mapping of some of its
            fields overrides just those, e.g. ``{grid_scale: [0.01, 0.05]}``.
        p: probability of producing a pseudo-fake.
    """

    class InitSchema(BaseTransformInitSchema):
        index: LandmarkIndex
        top_k: int = Field(ge=1)
        alignment: Literal["none", "similarity", "affine"]
        colour_correction: Literal["mean_std", "mean", "none"]
        mask: Any  # MaskSettings, a mapping of its fields or None: validated by masks.mask_settings

    def __init__(
        self,
        index: LandmarkIndex,
        top_k: int = 1,
        alignment: Literal["none", "similarity", "affine"] = "none",
        colour_correction: Literal["mean_std", "mean", "none"] = "mean",
        mask: MaskSettings = BI_MASK_SETTINGS,
        p: float = 1.0,
    ):
        super().__init__(p=p)
        self.index = index
        self.top_k = top_k
        self.alignment = alignment
        self.colour_correction = colour_correction
        self.mask_settings = mask_settings(mask, BI_MASK_SETTINGS)

    @property
    def targets_as_params(self) -> list[str]:
        return ["keypoints", "identity"]

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("top_k", "alignment", "colour_correction")

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        shape = params["shape"]
        landmarks = check_landmarks(data.get("keypoints"))
        identity = data.get("identity")
        if identity is None:
            raise ValueError("BlendedImage needs identity=<subject or video id> next to image/keypoints so the "
                             "foreground comes from another identity (PseudoFakePair passes sample['video_id'])")
        candidates = self.index.nearest(landmarks, str(identity), self.top_k)
        chosen = int(candidates[self.py_random.randrange(len(candidates))])
        foreground = self.index.image(chosen)
        if self.alignment == "none":  # the released code: the foreground crop resized to the background's size
            matrix = np.array([[shape[1] / foreground.shape[1], 0.0, 0.0], [0.0, shape[0] / foreground.shape[0], 0.0]])
        else:
            fit = similarity_transform if self.alignment == "similarity" else affine_transform
            matrix = fit(self.index.landmarks[chosen], landmarks)
        recipe = draw_mask_recipe(self.mask_settings, shape, face_size(landmarks), self.py_random,
                                  self.random_generator)
        mask_roi, roi = render_blend_mask(shape, hull_polygons(landmarks, recipe.hull_type), recipe)
        return {"foreground": foreground, "foreground_index": chosen, "foreground_matrix": matrix,
                "mask_roi": mask_roi, "roi": roi, "recipe": recipe}

    def apply(self, img: np.ndarray, foreground: np.ndarray, foreground_matrix: np.ndarray, mask_roi: np.ndarray,
              roi: Box, **params: Any) -> np.ndarray:
        """Eq. (1) on the ROI: M * colour-corrected aligned foreground + (1 - M) * image."""
        out = img.copy()
        if mask_roi.size == 0:
            return out
        x0, y0, x1, y1 = roi
        aligned = warp_patch(foreground, (0, 0), foreground_matrix, roi)
        background = img[y0:y1, x0:x1]
        corrected = colour_transfer(aligned, background, mask_roi, self.colour_correction)
        out[y0:y1, x0:x1] = blend_uint8(corrected, background, mask_roi)
        return out
