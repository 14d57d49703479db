"""The preprocessed index: one row per face crop (or per failed video/frame), stored as Parquet.

Written by ``lightning_dfd.data.preprocess``, read by every DataModule. Columns (see docs/architecture.md):

==============  ========  ==============================================================================
column          type      meaning
==============  ========  ==============================================================================
dataset         str       ``ffpp``, ``celebdf_v1``, ``celebdf_v2``, ``dfdc``, ``dfdc_preview``, ``casia_surf``,
                          ``folder``
video_id        str       unique within the dataset, stable (e.g. ``Deepfakes/c23/000_003``); frames share it
frame_index     int       position of the frame in the decoded video (0 for images)
path            str       crop file, relative to the manifest's directory ("" when status != "ok")
label           int       0 real / bona fide, 1 fake / attack, -1 unknown (predict on unlabeled data; a null
                          label is read as -1, and training refuses rows whose label is not 0 / 1)
method          str       manipulation (``Deepfakes``...) or ``real``; for CASIA-SURF ``attack_<k>`` / ``real``
attack_type     int       CASIA-SURF attack type 1..6 (seed 001, Table 1), 0 for bona fide / not applicable
compression     str       ``raw``, ``c23``, ``c40`` (FF++), "" elsewhere
split           str       ``train``, ``val``, ``test`` or "" when the dataset assigns it at load time
subject         str       identity (for subject-disjoint folds); "" when unknown
source_video    str       path of the raw video/image relative to the dataset root
landmarks       list      68*2 floats (x0, y0, x1, y1, ...) in crop coordinates; empty when unavailable
box             list      4 floats: x0, y0, x1, y1 of the crop in the source frame; empty when unavailable
status          str       ``ok`` or a failure kind: ``corrupt``, ``unreadable``, ``no_face``, ``no_face_video``
reason          str       human-readable detail for failures ("" when ok)
extra_paths     str       JSON object of further per-row files (e.g. ``{"depth": ..., "ir": ...}``); "" if none
==============  ========  ==============================================================================
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_dfd.batch import UNKNOWN_LABEL
from lightning_dfd.io import atomic_path

MANIFEST_NAME = "manifest.parquet"

SCHEMA = pa.schema([
    ("dataset", pa.string()),
    ("video_id", pa.string()),
    ("frame_index", pa.int64()),
    ("path", pa.string()),
    ("label", pa.int64()),
    ("method", pa.string()),
    ("attack_type", pa.int64()),
    ("compression", pa.string()),
    ("split", pa.string()),
    ("subject", pa.string()),
    ("source_video", pa.string()),
    ("landmarks", pa.list_(pa.float32())),
    ("box", pa.list_(pa.float32())),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("extra_paths", pa.string()),
])
COLUMNS = [f.name for f in SCHEMA]
DEFAULTS = {
    "dataset": "", "video_id": "", "frame_index": 0, "path": "", "label": UNKNOWN_LABEL, "method": "", "attack_type": 0,
    "compression": "", "split": "", "subject": "", "source_video": "", "landmarks": [], "box": [],
    "status": "ok", "reason": "", "extra_paths": "",
}


class ManifestError(ValueError):
    """A manifest is missing or malformed; the message names the file and the fix."""


def normalise(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """Fill defaults, order columns, reject unknown columns."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    unknown = set(frame.columns) - set(COLUMNS)
    if unknown:
        raise ManifestError(f"unknown manifest columns {sorted(unknown)}; allowed: {COLUMNS}")
    for name in COLUMNS:
        default = DEFAULTS[name]
        if name not in frame.columns:
            frame[name] = [list(default) for _ in range(len(frame))] if isinstance(default, list) else default
            continue
        missing = frame[name].isna() if not isinstance(default, list) else frame[name].map(
            lambda v: v is None or (isinstance(v, float) and math.isnan(v)))
        if missing.any():  # a row that lacks a value another row has gets the default, never a null
            frame[name] = frame[name].astype(object)
            for i in frame.index[missing]:
                frame.at[i, name] = list(default) if isinstance(default, list) else default
    return frame[COLUMNS].reset_index(drop=True)


def write_manifest(rows: list[dict] | pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write rows atomically as Parquet with the fixed schema; returns the path."""
    path = Path(path)
    table = pa.Table.from_pandas(normalise(rows), schema=SCHEMA, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest (file or directory holding ``manifest.parquet``)."""
    path = Path(path)
    if path.is_dir() or path.suffix != ".parquet":
        path = path / MANIFEST_NAME
    if not path.exists():
        raise ManifestError(
            f"manifest not found: {path}. Run `python -m lightning_dfd preprocess --dataset NAME --root RAW "
            f"--out {path.parent}` first, or point `path` at its output folder."
        )
    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for damaged files
        raise ManifestError(f"cannot read manifest {path}: {err}. Delete it and re-run preprocess.") from err
    missing = set(COLUMNS) - set(table.column_names)
    if missing:
        raise ManifestError(f"manifest {path} lacks columns {sorted(missing)}; re-run preprocess.")
    frame = table.to_pandas()[COLUMNS]
    if frame["label"].isna().any():  # a null label is unknown (-1), never real: training refuses such rows
        frame["label"] = frame["label"].fillna(UNKNOWN_LABEL)
    frame["label"] = frame["label"].astype("int64")
    return frame
