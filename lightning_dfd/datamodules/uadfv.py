"""UADFV (Yang et al. 2019): the seeded, subject-disjoint 80 / 20 train / test split of its split file
(``uadfv_split.json``, written by preprocess, DefakeHop seed 000 §4.1); validation a seeded fraction of the
training subjects."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule, seeded_group_split, subject_groups


class UADFVDataModule(FaceForgeryDataModule):
    """UADFV face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        val_fraction: fraction of the training subjects held out for validation (seeded by ``seed``).
        **kwargs: every other argument of :class:`FaceForgeryDataModule`.
    """

    dataset_names = ("uadfv",)

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
