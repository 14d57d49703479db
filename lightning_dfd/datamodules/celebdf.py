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


class CelebDFDataModule(FaceForgeryDataModule):
    """Celeb-DF face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        version: ``v1`` or ``v2`` (checked against the manifest's ``dataset`` column).
        val_fraction: fraction of the training subjects held out for validation (seeded by ``seed``).
        **kwargs: every other argument of :class:`FaceForgeryDataModule` (``batch_size``, ``image_size``,
            ``pseudo_fake``, ``targets_transform``, ``balance``, ...); the CLI lists and checks them all.
    """

    def __init__(
        self,
        path: str,
        version: Literal["v1", "v2"] = "v2",
        val_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(path=path, **kwargs)
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
