"""Celeb-DF v1 / v2 (Li et al. 2020): official test list, validation carved from the training videos.

The ``split`` column (from ``List_of_testing_videos.txt``, whose 1 = real convention preprocess converts) marks
the test videos; every other video is training data. A seeded fraction of the training *subjects* becomes the
validation split, so no identity is in both (``subject`` = the first ``idX`` of ``idX_NNNN`` / ``idX_idY_NNNN``;
YouTube-real videos have no subject and form a group each).
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule, seeded_group_split, subject_groups
from lightning_dfd.datamodules.pipeline import IMAGENET_MEAN, IMAGENET_STD


class CelebDFDataModule(FaceForgeryDataModule):
    """Celeb-DF face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        version: ``v1`` or ``v2`` (checked against the manifest's ``dataset`` column).
        val_fraction: fraction of the training subjects held out for validation (seeded by ``seed``).
        batch_size, num_workers, image_size, resize_size, frames_per_video, mode, clip_length, clip_stride,
        train_transforms, eval_transforms, normalize_mean, normalize_std, pseudo_fake, pseudo_fake_args,
        laanet_targets, heatmap_size, balance, seed, pin_memory: see :class:`FaceForgeryDataModule`.
    """

    def __init__(
        self,
        path: str,
        version: Literal["v1", "v2"] = "v2",
        val_fraction: float = 0.1,
        batch_size: int = 32,
        num_workers: int = 4,
        image_size: int = 224,
        resize_size: int | None = None,
        frames_per_video: int | None = 8,
        mode: Literal["frame", "clip"] = "frame",
        clip_length: int = 10,
        clip_stride: int = 1,
        train_transforms: list[dict[str, Any]] | None = None,
        eval_transforms: list[dict[str, Any]] | None = None,
        normalize_mean: tuple[float, ...] = IMAGENET_MEAN,
        normalize_std: tuple[float, ...] = IMAGENET_STD,
        pseudo_fake: Literal["none", "sbi", "bi"] = "none",
        pseudo_fake_args: dict[str, Any] | None = None,
        laanet_targets: bool = False,
        heatmap_size: int | None = None,
        balance: Literal["none", "sampler", "loss_weights"] = "none",
        seed: int = 0,
        pin_memory: bool = True,
    ) -> None:
        super().__init__(
            path=path, batch_size=batch_size, num_workers=num_workers, image_size=image_size,
            resize_size=resize_size, frames_per_video=frames_per_video, mode=mode, clip_length=clip_length, clip_stride=clip_stride,
            train_transforms=train_transforms, eval_transforms=eval_transforms, normalize_mean=normalize_mean,
            normalize_std=normalize_std, pseudo_fake=pseudo_fake, pseudo_fake_args=pseudo_fake_args,
            laanet_targets=laanet_targets, heatmap_size=heatmap_size, balance=balance, seed=seed,
            pin_memory=pin_memory,
        )
        if version not in ("v1", "v2"):
            raise ValueError(f"Celeb-DF version must be 'v1' or 'v2', got {version!r}")
        self.version = version
        self.val_fraction = val_fraction
        self.dataset_names = (f"celebdf_{version}",)

    def _dataset_hint(self) -> str:
        return f"(version={self.version!r})"

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        split = rows["split"].astype(str)
        train_all = rows[split != "test"]
        held = seeded_group_split(subject_groups(train_all), self.val_fraction, self.seed)
        out = {"train": train_all[~held], "val": train_all[held], "test": rows[split == "test"]}
        out["predict"] = out["test"]
        return out
