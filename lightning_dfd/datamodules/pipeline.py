"""From decoded crops to the tensors of the sample dict: [pseudo-fake], resize + augment, normalise.

Order, per sample:

1. with a pseudo-fake pair maker (SBI / BI, :class:`~lightning_dfd.transforms.self_blended.PseudoFakePair`), the
   real crop at its stored resolution and its 68 landmarks give a pseudo-fake and its blend mask M (SBI:
   Shiohara & Yamasaki 2022, §3.2-3.3; BI: Li et al. 2020, §3.2; both blended by LAA-Net Eq. 1), as SBI does
   before resizing;
2. one draw of ``Resize(resize_size) + the configured albumentations pipeline`` is applied to *all* images of the
   sample (modalities and clip frames stay registered; a real crop and its pseudo-fake get the same geometry, as
   in SBI), to the mask (bilinear) and to the landmarks (albumentations keypoints, ``xy``); the result must be
   ``image_size`` square (``resize_size`` defaults to it; a larger one suits a crop, e.g. 125 -> CenterCrop 112);
3. a configured targets transform (:class:`~lightning_dfd.transforms.dense_targets.TargetsTransform`, e.g.
   LAA-Net's heatmap and self-consistency maps) adds dense targets from the augmented mask (inside the pair maker);
4. images become float tensors ``(C, H, W)`` normalised by ``(x / 255 - mean) / std`` per channel (ImageNet by
   default; the 3 values repeat for every modality); masks ``(1, H, W)``; clips ``(T, C, H, W)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch

from lightning_dfd.batch import CLIP, IMAGE, LABEL, LANDMARKS, MASK
from lightning_dfd.datamodules.augment import AnyTransform, compose
from lightning_dfd.transforms.dense_targets import TargetsTransform

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Frame = dict[str, np.ndarray]
"""One time step: modality name (``rgb``, ``depth``, ``ir``) -> HxWx3 uint8 RGB image."""

ALBUMENTATIONS_IMAGE = "image"
"""Albumentations' name of the primary image target (its API, not the batch key ``IMAGE``)."""
ALBUMENTATIONS_KEYPOINTS = "keypoints"


def image_key(frame: int, modality: str, modalities: Sequence[str]) -> str:
    """Albumentations target name of one image of a sample; the first modality of frame 0 is ``image``."""
    return ALBUMENTATIONS_IMAGE if frame == 0 and modality == modalities[0] else f"image_{frame}_{modality}"


def channel_stats(values: Sequence[float], modalities: int, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float32).reshape(-1)
    if values.size == 3:
        return np.tile(values, modalities)
    if values.size == 3 * modalities:
        return values
    raise ValueError(f"{name} needs 3 values (repeated per modality) or 3 x {modalities}; got {values.tolist()}")


def resize_and_augment(image_size: int, transforms: Sequence[AnyTransform],
                       additional_targets: Mapping[str, str] | None = None) -> A.Compose:
    """``Compose([Resize(image_size), *transforms], strict=True)`` with landmarks as keypoints; masks are
    interpolated bilinearly everywhere (soft blend masks stay soft)."""
    pipeline = compose([A.Resize(image_size, image_size), *transforms], additional_targets=additional_targets)
    pipeline.set_mask_interpolation(cv2.INTER_LINEAR)  # recursive, nested composes included
    return pipeline


class SamplePipeline:
    """[Pseudo-fake] -> resize + augment -> normalise, for frames or clips of one or more modalities.

    Args:
        image_size: side of the square output crop.
        transforms: albumentations transforms applied after resizing (built from the config).
        resize_size: side the crops are resized to before ``transforms`` (default ``image_size``).
        modalities: modality names stacked along channels, in this order (C = 3 x len).
        clip_length: frames per sample (1 in frame mode).
        mean, std: normalisation per channel (3 values, repeated per modality, or 3 x len(modalities)).
        blend: SBI / BI transform (``SelfBlendedImage`` / ``BlendedImage``); the pipeline then returns
            ``(real, fake)`` pairs made by ``PseudoFakePair`` with the resize + augmentation shared by both.
        targets: targets transform applied to both halves of a pair (its ``keys`` become float tensors).
    """

    def __init__(self, image_size: int, transforms: Sequence[AnyTransform] = (), modalities: Sequence[str] = ("rgb",),
                 clip_length: int = 1, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 blend: A.DualTransform | None = None, targets: TargetsTransform | None = None,
                 resize_size: int | None = None) -> None:
        if targets is not None and blend is None:
            raise ValueError(f"the targets of {type(targets).__name__} come from the blend mask of a pseudo-fake: "
                             f"set pseudo_fake to sbi or bi")
        if blend is not None and (clip_length != 1 or len(modalities) != 1):
            raise ValueError("pseudo-fakes (SBI/BI) are made from single RGB frames: use mode=frame and one modality")
        self.image_size = int(image_size)
        self.resize_size = int(resize_size or image_size)
        self.modalities = list(modalities)
        self.clip_length = int(clip_length)
        self.mean = channel_stats(mean, len(self.modalities), "mean")
        self.std = channel_stats(std, len(self.modalities), "std")
        extra = {image_key(t, m, self.modalities): ALBUMENTATIONS_IMAGE
                 for t in range(self.clip_length) for m in self.modalities}
        extra.pop(ALBUMENTATIONS_IMAGE)
        self.augment = resize_and_augment(self.resize_size, list(transforms), extra)
        self.pair = None
        self.target_keys: tuple[str, ...] = tuple(targets.keys) if targets is not None else ()
        if blend is not None:
            from lightning_dfd.transforms.self_blended import PseudoFakePair

            self.pair = PseudoFakePair(blend, shared=self.augment, targets=targets, identity_key="identity")

    # ------------------------------------------------------------------ tensors
    def _normalised(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        image = np.concatenate(list(images), axis=-1).astype(np.float32) / 255.0
        image = (image - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def _check_size(self, image: np.ndarray) -> None:
        if image.shape[:2] != (self.image_size, self.image_size):
            raise ValueError(f"the augmentation pipeline returned {image.shape[:2]} crops, expected image_size "
                             f"{self.image_size}: transforms after Resize({self.resize_size}) must end at that size "
                             f"(e.g. CenterCrop / RandomResizedCrop with size [{self.image_size}, {self.image_size}], "
                             f"in both train_transforms and eval_transforms)")

    @staticmethod
    def _landmarks(points: Any, missing: np.ndarray | None) -> torch.Tensor:
        points = np.array(points, dtype=np.float32).reshape(-1, 2)[:, :2]
        if missing is not None:
            points[missing] = np.nan
        return torch.from_numpy(points)

    def _pair_tensors(self, half: Mapping[str, Any]) -> dict[str, Any]:
        self._check_size(half[IMAGE])
        out = {IMAGE: self._normalised([half[IMAGE]]),
               MASK: torch.from_numpy(np.ascontiguousarray(half[MASK], dtype=np.float32)).reshape(
                   1, self.image_size, self.image_size),
               LANDMARKS: self._landmarks(half[LANDMARKS], None), LABEL: int(half[LABEL])}
        for key in self.target_keys:
            if key in half:
                value = torch.as_tensor(np.ascontiguousarray(half[key]), dtype=torch.float32)
                out[key] = value[None] if value.ndim == 2 else value
        return out

    # ------------------------------------------------------------------ call
    def __call__(self, frames: Sequence[Frame], landmarks: np.ndarray | None = None, identity: str = ""
                 ) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
        """Tensors of one sample: ``{"image" or "clip", ["landmarks"]}``; with a pair maker a pair ``(real, fake)``
        whose halves also hold ``mask`` (zeros for the real) and, when configured, the targets transform's keys."""
        if len(frames) != self.clip_length:
            raise ValueError(f"expected {self.clip_length} frames, got {len(frames)}")
        if self.pair is not None:
            if landmarks is None or not np.isfinite(landmarks).all():
                raise ValueError("SBI/BI need the 68 landmarks of every training crop; this row has none (re-run "
                                 "preprocess with a landmark backend)")
            real, fake = self.pair({IMAGE: frames[0][self.modalities[0]], LANDMARKS: landmarks,
                                    "identity": identity})
            return self._pair_tensors(real), self._pair_tensors(fake)
        data: dict[str, Any] = {image_key(t, m, self.modalities): frame[m]
                                for t, frame in enumerate(frames) for m in self.modalities}
        missing = None
        if landmarks is not None:
            landmarks = np.asarray(landmarks, dtype=np.float32).reshape(-1, 2)
            missing = ~np.isfinite(landmarks).all(axis=1)
            data[ALBUMENTATIONS_KEYPOINTS] = np.where(missing[:, None], 0.0, landmarks)
        out = self.augment(**data)
        steps = []
        for t in range(self.clip_length):
            images = [out[image_key(t, m, self.modalities)] for m in self.modalities]
            self._check_size(images[0])
            steps.append(self._normalised(images))
        sample: dict[str, Any] = {CLIP: torch.stack(steps)} if self.clip_length > 1 else {IMAGE: steps[0]}
        if landmarks is not None:
            sample[LANDMARKS] = self._landmarks(out[ALBUMENTATIONS_KEYPOINTS], missing)
        return sample
