"""FaceForensics++ (Rössler et al. 2019): official 720/140/140 video split and the protocols of the papers.

Protocols (rows are always one compression level):

* ``all``: real videos vs every manipulation in ``methods`` (the usual c23 / c40 benchmark rows).
* ``single``: real vs the one manipulation in ``methods`` (per-manipulation training).
* ``leave_one_out``: train and validate on real + ``methods`` without ``holdout_method``; test on real +
  ``holdout_method`` only (DLDFD's cross-manipulation evaluation, seed 002).
* ``real_only``: the training split keeps only real videos (SBI / BI training, LAA-Net seed 003); val and test
  keep real + every manipulation in ``methods``.

The ``split`` column written by preprocess from ``splits/{train,val,test}.json`` decides the split; videos
outside it (``actors`` originals, DeepFakeDetection) are left out. Every sample keeps its ``method`` so the
method base reports per-manipulation metrics.
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule

FFPP_DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FFPP_ALL_METHODS = FFPP_DEFAULT_METHODS + ("FaceShifter", "DeepFakeDetection")
REAL_METHOD = "real"


class FFPPDataModule(FaceForgeryDataModule):
    """FaceForensics++ face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        methods: manipulations used (default the four of FF++; ``FaceShifter`` optional).
        protocol: ``all``, ``single``, ``leave_one_out`` or ``real_only`` (module docstring).
        holdout_method: the manipulation held out for testing with ``protocol='leave_one_out'``.
        compression: ``raw``, ``c23`` or ``c40``.
        real_sources: which original folders count as real videos (``youtube``; ``actors`` are outside the split).
        **kwargs: every other argument of :class:`FaceForgeryDataModule` (``batch_size``, ``image_size``,
            ``pseudo_fake``, ``targets_transform``, ``balance``, ...); the CLI lists and checks them all.
    """

    dataset_names = ("ffpp",)

    def __init__(
        self,
        path: str,
        methods: tuple[str, ...] = FFPP_DEFAULT_METHODS,
        protocol: Literal["all", "single", "leave_one_out", "real_only"] = "all",
        holdout_method: str | None = None,
        compression: Literal["raw", "c23", "c40"] = "c23",
        real_sources: tuple[str, ...] = ("youtube",),
        **kwargs: Any,
    ) -> None:
        super().__init__(path=path, **kwargs)
        methods = list(methods)
        unknown = sorted(set(methods) - set(FFPP_ALL_METHODS))
        if unknown:
            raise ValueError(f"unknown FF++ methods {unknown}; choose from {list(FFPP_ALL_METHODS)}")
        if protocol == "single" and len(methods) != 1:
            raise ValueError(f"protocol='single' trains on one manipulation: pass methods=[NAME], got {methods}")
        if protocol == "leave_one_out":
            if holdout_method not in methods:
                raise ValueError(f"protocol='leave_one_out' needs holdout_method in methods {methods}, "
                                 f"got {holdout_method!r}")
            if len(methods) < 2:
                raise ValueError("protocol='leave_one_out' needs at least two methods")
        elif holdout_method is not None:
            raise ValueError(f"holdout_method is only used with protocol='leave_one_out' (protocol={protocol!r})")
        self.methods = methods
        self.protocol = protocol
        self.holdout_method = holdout_method
        self.compression = compression
        self.real_sources = list(real_sources)

    def _is_real_source(self, rows: pd.DataFrame) -> pd.Series:
        """Real rows from the chosen original folders (video ids ``youtube/c23/000``)."""
        source = rows["video_id"].astype(str).str.split("/").str[0]
        return (rows["method"] == REAL_METHOD) & source.isin(self.real_sources)

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        rows = rows[rows["compression"].astype(str) == self.compression]
        if rows.empty:
            raise ValueError(f"manifest {self.manifest_path} has no usable {self.compression} rows; preprocess "
                             f"that compression (dataset_options: {{compressions: [{self.compression}]}}) or set "
                             f"compression to one the manifest holds.")
        real = self._is_real_source(rows)
        fake_method = rows["method"].astype(str)
        if self.protocol == "leave_one_out":
            seen = [m for m in self.methods if m != self.holdout_method]
            train_keep = real | fake_method.isin(seen)
            test_keep = real | (fake_method == self.holdout_method)
        elif self.protocol == "real_only":
            train_keep = real
            test_keep = real | fake_method.isin(self.methods)
        else:
            train_keep = test_keep = real | fake_method.isin(self.methods)
        val_keep = train_keep if self.protocol == "leave_one_out" else test_keep
        split = rows["split"].astype(str)
        out = {
            "train": rows[(split == "train") & train_keep],
            "val": rows[(split == "val") & val_keep],
            "test": rows[(split == "test") & test_keep],
        }
        out["predict"] = out["test"]
        return out
