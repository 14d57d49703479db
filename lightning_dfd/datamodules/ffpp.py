"""FaceForensics++ (Rössler et al. 2019): official 720/140/140 video split and the protocols of the papers.

Protocols (rows are always one compression level):

* ``all``: real videos vs every manipulation in ``methods`` (the usual c23 / c40 benchmark rows).
* ``single``: real vs the one manipulation in ``methods`` (per-manipulation training).
* ``leave_one_out``: train and validate on real + ``methods`` without ``holdout_method``; test on real +
  ``holdout_method`` only (DLDFD's cross-manipulation evaluation, seed 002).
* ``real_only``: the training split keeps only real videos (SBI / BI training, LAA-Net seed 003); val and test
  keep real + every manipulation in ``methods``.

``test_balance: balanced`` keeps every real test video and as many fake test videos, drawn evenly across the
manipulations with ``test_balance_seed`` (:func:`balanced_test_videos`; 140 real + 35 per manipulation on FF++, the
combined set DLDFD's Table 2 fits, seed 002).

The ``split`` column written by preprocess from ``splits/{train,val,test}.json`` decides the split; videos
outside it (``actors`` originals, DeepFakeDetection) are left out. Every sample keeps its ``method`` so the
method base reports per-manipulation metrics.
"""

from __future__ import annotations

import zlib
from typing import Any, Literal

import numpy as np
import pandas as pd

from lightning_dfd.datamodules.base import FaceForgeryDataModule

FFPP_DEFAULT_METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
FFPP_ALL_METHODS = FFPP_DEFAULT_METHODS + ("FaceShifter", "DeepFakeDetection")
REAL_METHOD = "real"


def balanced_test_videos(rows: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The rows of every real video and of as many fake videos, drawn evenly across the manipulations.

    With ``R`` real videos and ``M`` manipulations each manipulation gives ``R // M`` videos, and the first
    ``R % M`` manipulations in name order one more; within a manipulation the videos are a seeded permutation of
    its video ids in name order (seed = ``seed`` and the manipulation's name, so one manipulation's draw does not
    depend on the others). A manipulation with too few videos is an error naming the counts.
    """
    is_real = rows["label"] == 0
    n_real = int(rows.loc[is_real, "video_id"].nunique())
    fakes = rows[~is_real]
    methods = sorted(fakes["method"].astype(str).unique())
    keep = set(rows.loc[is_real, "video_id"])
    for index, method in enumerate(methods):
        quota = n_real // len(methods) + (1 if index < n_real % len(methods) else 0)
        videos = np.array(sorted(fakes.loc[fakes["method"] == method, "video_id"].unique()), dtype=object)
        if quota > len(videos):
            raise ValueError(f"test_balance: balanced needs {quota} {method} test videos beside {n_real} real ones, "
                             f"the test split has {len(videos)}; use test_balance: none")
        rng = np.random.default_rng([seed, zlib.crc32(method.encode())])
        keep.update(rng.permutation(videos)[:quota].tolist())
    return rows[rows["video_id"].isin(keep)]


class FFPPDataModule(FaceForgeryDataModule):
    """FaceForensics++ face crops from a preprocess manifest.

    Args:
        path: manifest file or preprocess output folder.
        methods: manipulations used (default the four of FF++; ``FaceShifter`` optional).
        protocol: ``all``, ``single``, ``leave_one_out`` or ``real_only`` (module docstring).
        holdout_method: the manipulation held out for testing with ``protocol='leave_one_out'``.
        compression: ``raw``, ``c23`` or ``c40``.
        real_sources: which original folders count as real videos (``youtube``; ``actors`` are outside the split).
        test_balance: ``none`` (every test video of the protocol) or ``balanced`` (every real test video and as
            many fakes, drawn evenly across the manipulations: :func:`balanced_test_videos`).
        test_balance_seed: seed of the fakes ``balanced`` draws (fixed, so every run tests the same videos).
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
        test_balance: Literal["none", "balanced"] = "none",
        test_balance_seed: int = 0,
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
        if test_balance not in ("none", "balanced"):
            raise ValueError(f"test_balance must be none or balanced, got {test_balance!r}")
        self.test_balance = test_balance
        self.test_balance_seed = test_balance_seed

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
        if self.test_balance == "balanced":
            out["test"] = balanced_test_videos(out["test"], self.test_balance_seed)
        out["predict"] = out["test"]
        return out
