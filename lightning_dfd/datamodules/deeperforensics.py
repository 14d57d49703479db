"""DeeperForensics-1.0 (Jiang et al. 2020): the official ``lists/splits`` train / val / test; real videos are the
FF++ c23 targets in their fakes' split. ``method`` holds the variant (perturbation kind) of each fake, so the
method base reports per-variant metrics as it does per FF++ manipulation."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lightning_dfd.data.layouts import DEEPER_VARIANTS
from lightning_dfd.datamodules.base import FaceForgeryDataModule


class DeeperForensicsDataModule(FaceForgeryDataModule):
    """DeeperForensics-1.0 face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        variants: manipulated-video variants used (default: all in the manifest), e.g. ``[end_to_end]``.
        **kwargs: every other argument of :class:`FaceForgeryDataModule`.
    """

    dataset_names = ("deeperforensics",)

    def __init__(self, path: str, variants: tuple[str, ...] | None = None, **kwargs: Any) -> None:
        super().__init__(path=path, **kwargs)
        unknown = sorted(set(variants or ()) - set(DEEPER_VARIANTS))
        if unknown:
            raise ValueError(f"unknown DeeperForensics-1.0 variants {unknown}; choose from {list(DEEPER_VARIANTS)}")
        self.variants = list(variants) if variants is not None else None

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        if self.variants is not None:
            rows = rows[(rows["label"] == 0) | rows["method"].isin(self.variants)]
        split = rows["split"].astype(str)
        out = {stage: rows[split == stage] for stage in ("train", "val", "test")}
        out["predict"] = out["test"]
        return out
