"""Google's DeepFakeDetection (DFD): a test set only, every video of one compression (LAA-Net seed 003, Table 1)."""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule
from lightning_dfd.errors import UserError


class DFDDataModule(FaceForgeryDataModule):
    """DFD face crops from a preprocess manifest; all of them form the test (and predict) split.

    Args:
        path: manifest file or preprocess output folder.
        compression: ``raw``, ``c23`` or ``c40``.
        **kwargs: every other argument of :class:`FaceForgeryDataModule`.
    """

    dataset_names = ("dfd",)

    def __init__(self, path: str, compression: Literal["raw", "c23", "c40"] = "c23", **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        self.compression = compression

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        rows = rows[rows["compression"].astype(str) == self.compression]
        if rows.empty:
            raise UserError(f"manifest {self.manifest_path} has no {self.compression} DFD rows; preprocess that "
                            f"compression or set data.init_args.compression to one it holds")
        empty = rows.iloc[0:0]
        return {"train": empty, "val": empty, "test": rows, "predict": rows}

    def train_dataloader(self):
        raise UserError("DFDDataModule is a test set only (DFD has no split): use `test` / `predict` with a "
                        "model trained on another dataset, not `fit`")
