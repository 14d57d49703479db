"""WildDeepfake (Zi et al. 2020): the release's train / test parts; validation a seeded fraction of the training
face sequences (the release names no identities, so each sequence is its own group)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule, seeded_group_split, subject_groups


class WildDeepfakeDataModule(FaceForgeryDataModule):
    """WildDeepfake face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        val_fraction: fraction of the training sequences held out for validation (seeded by ``seed``).
        **kwargs: every other argument of :class:`FaceForgeryDataModule`.
    """

    dataset_names = ("wilddeepfake",)

    def __init__(self, path: str, val_fraction: float = 0.1, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        self.val_fraction = val_fraction

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        split = rows["split"].astype(str)
        train_all = rows[split == "train"]
        held = seeded_group_split(subject_groups(train_all), self.val_fraction, self.seed)
        out = {"train": train_all[~held], "val": train_all[held], "test": rows[split == "test"]}
        out["predict"] = out["test"]
        return out
