"""DFDC (Dolhansky et al. 2020), full challenge data or the preview release.

Full: ``dfdc_train_part_K`` videos train (``split`` column from each part's ``metadata.json``), the test videos
with ``labels.csv`` test. Validation: the parts in ``val_parts`` (the part number is read from video ids
``dfdc_train_part_K/<name>``), rows the manifest already marks ``val``, or else a seeded fraction of the training
*originals* (``subject`` = the original video, so a real video and its fakes stay on one side).
Preview: ``dataset.json``'s train / test sets; validation a seeded fraction of training ``target_id`` subjects.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule, seeded_group_split, subject_groups

PART_PATTERN = re.compile(r"dfdc_train_part_(\d+)/")


def train_part(video_ids: pd.Series) -> pd.Series:
    """Part number K of ``dfdc_train_part_K/...`` video ids (-1 when the id names no part)."""
    return video_ids.astype(str).str.extract(PART_PATTERN, expand=False).fillna(-1).astype(int)


class DFDCDataModule(FaceForgeryDataModule):
    """DFDC face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        variant: ``full`` (``dataset`` column ``dfdc``) or ``preview`` (``dfdc_preview``).
        val_parts: training parts used for validation (full variant); None: the manifest's ``val`` rows, or
            ``val_fraction`` of the training subjects when it has none.
        val_fraction: held-out fraction of training subjects when no validation part is given.
        **kwargs: every other argument of :class:`FaceForgeryDataModule` (``batch_size``, ``image_size``,
            ``pseudo_fake``, ``targets_transform``, ``balance``, ...); the CLI lists and checks them all.
    """

    def __init__(
        self,
        path: str,
        variant: Literal["full", "preview"] = "full",
        val_parts: tuple[int, ...] | None = None,
        val_fraction: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(path=path, **kwargs)
        if variant not in ("full", "preview"):
            raise ValueError(f"DFDC variant must be 'full' or 'preview', got {variant!r}")
        if variant == "preview" and val_parts:
            raise ValueError("val_parts applies to the full DFDC (dfdc_train_part_K folders), not the preview")
        self.variant = variant
        self.val_parts = tuple(val_parts) if val_parts is not None else None
        self.val_fraction = val_fraction
        self.dataset_names = ("dfdc",) if variant == "full" else ("dfdc_preview",)

    def _dataset_hint(self) -> str:
        return f"(variant={self.variant!r})"

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        split = rows["split"].astype(str)
        train_all = rows[split.isin(["train", "val"])]
        if self.val_parts is not None:
            parts = train_part(train_all["video_id"])
            missing = sorted(set(self.val_parts) - set(parts.tolist()))
            if missing:
                raise ValueError(f"val_parts {missing} are not in manifest {self.manifest_path} (parts present: "
                                 f"{sorted(set(parts.tolist()) - {-1})})")
            held = parts.isin(self.val_parts).to_numpy()
        elif (train_all["split"] == "val").any():
            held = (train_all["split"] == "val").to_numpy()
        else:
            held = seeded_group_split(subject_groups(train_all), self.val_fraction, self.seed)
        out = {"train": train_all[~held], "val": train_all[held], "test": rows[split == "test"]}
        out["predict"] = out["test"]
        return out
