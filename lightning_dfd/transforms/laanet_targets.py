"""LAA-Net's training targets as an injectable targets transform (Nguyen et al., CVPR 2024, seed 003, §3.1.2).

:class:`LAANetTargets` wraps :func:`lightning_dfd.transforms.targets.laanet_targets` (heatmap H, Eq. 2-4;
self-consistency C, Eq. 7, from the blend mask M of Eq. 1) and :func:`~lightning_dfd.transforms.targets.
real_targets` (H = 0, C = 1) for the DataModule: it is chosen in the config as ``data.init_args.targets_transform``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lightning_dfd.batch import CONSISTENCY, HEATMAP, LABEL, MASK, REAL
from lightning_dfd.transforms.dense_targets import TargetsTransform
from lightning_dfd.transforms.targets import laanet_targets, real_targets


class LAANetTargets(TargetsTransform):
    """Adds ``HEATMAP`` (Eq. 4) and ``CONSISTENCY`` (Eq. 7), each (1, D, D), from a sample's ``MASK`` and ``LABEL``.

    The map side D is ``map_size`` or the mask side divided by ``stride`` (LAA-Net: 384 px crops, stride 4 ->
    96). A real (``label == 0``) or an all-zero mask gets the real targets H = 0, C = 1. The vulnerable point
    p_s of Eq. 7 is drawn from :attr:`random_generator`, reset by ``set_random_seed`` (DataLoader workers are
    reseeded through :func:`~lightning_dfd.transforms.seeding.reseed_transforms`).

    Args:
        stride: output stride of the model's heatmap / consistency heads (``heatmap_stride`` of LAA-Net).
        map_size: side D of the maps, overriding ``stride`` (None: crop side // stride).
        quantization_levels: B is rounded to this many levels before the argmax of Eq. 3 (None: exact float).
        extent_threshold: B level delimiting a vulnerable point's virtual box (released code: 128 / 255).
        min_overlap: CornerNet IoU threshold t of the Gaussian radius (0.7 in the paper).
        normalize_mask: divide M by its maximum first (B from the mask before the blending ratio).
        seed: initial seed of the point draws (None: fresh entropy; workers are reseeded anyway).
    """

    keys = (HEATMAP, CONSISTENCY)

    def __init__(self, stride: int = 4, map_size: int | None = None, quantization_levels: int | None = 255,
                 extent_threshold: float = 0.5, min_overlap: float = 0.7, normalize_mask: bool = True,
                 seed: int | None = None) -> None:
        if stride < 1:
            raise ValueError(f"LAANetTargets: stride must be >= 1, got {stride}")
        if map_size is not None and map_size < 1:
            raise ValueError(f"LAANetTargets: map_size must be >= 1 or null, got {map_size}")
        if not 0.0 < min_overlap < 1.0:
            raise ValueError(f"LAANetTargets: min_overlap must lie in (0, 1), got {min_overlap}")
        self.stride = int(stride)
        self.map_size = map_size
        self.quantization_levels = quantization_levels
        self.extent_threshold = float(extent_threshold)
        self.min_overlap = float(min_overlap)
        self.normalize_mask = bool(normalize_mask)
        self.set_random_seed(seed)

    def set_random_seed(self, seed: int | None) -> None:
        self.seed = seed
        self.random_generator = np.random.default_rng(seed)

    def map_side(self, image_size: int) -> int:
        return int(self.map_size) if self.map_size is not None else max(1, int(image_size) // self.stride)

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        if MASK not in sample:
            raise KeyError(f"LAANetTargets needs the blend mask sample[{MASK!r}] (pseudo_fake sbi or bi)")
        mask = np.asarray(sample[MASK], np.float32)
        side = self.map_side(mask.shape[-1])
        if int(sample.get(LABEL, 1)) == REAL:
            targets = real_targets(side)
        else:
            targets = laanet_targets(mask, side, self.random_generator, quantization_levels=self.quantization_levels,
                                     extent_threshold=self.extent_threshold, min_overlap=self.min_overlap,
                                     normalize_mask=self.normalize_mask)
        return {**sample, HEATMAP: targets[HEATMAP], CONSISTENCY: targets[CONSISTENCY]}

    def config(self) -> dict[str, Any]:
        return {"class_path": f"{type(self).__module__}.{type(self).__qualname__}",
                "init_args": {"stride": self.stride, "map_size": self.map_size,
                              "quantization_levels": self.quantization_levels,
                              "extent_threshold": self.extent_threshold, "min_overlap": self.min_overlap,
                              "normalize_mask": self.normalize_mask}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config()["init_args"].items())
        return f"LAANetTargets({args})"
