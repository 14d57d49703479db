"""The map-style dataset behind every DataModule: manifest rows -> sample dicts (the batch contract).

A dataset is a list of *units*. In frame mode a unit is one manifest row. In clip mode a unit is a window of
``clip_length`` (T) rows of one video (rows ordered by ``frame_index``) taken every ``clip_stride`` (s) rows:
rows ``r, r + s, ..., r + (T - 1) s``.

* Training datasets hold every window that fits (the sampler draws ``frames_per_video`` of them per epoch); a
  video shorter than one window (``(T - 1) s + 1`` rows) gives one window padded by repeating its last row.
* Evaluation datasets use every row exactly once: the rows ``o, o + s, o + 2s, ...`` of each offset
  ``o < s`` are cut into consecutive chunks of T, the last chunk padded by repeating its last row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from lightning_dfd.batch import ATTACK_TYPE, FRAME_INDEX, FRAME_INDICES, LABEL, METHOD, VIDEO_ID
from lightning_dfd.datamodules.pipeline import Frame, SamplePipeline

NUM_LANDMARKS = 68


class CropReadError(RuntimeError):
    """A face crop listed in the manifest cannot be read."""


def read_rgb(path: Path, context: str) -> np.ndarray:
    """uint8 HxWx3 RGB (grey images are replicated to 3 channels)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise CropReadError(f"cannot read face crop {path} ({context}); the file is missing or damaged: re-run "
                            f"preprocess for this dataset (it resumes) or mark the row status != 'ok'.")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def clip_windows(num_rows: int, clip_length: int, clip_stride: int, overlapping: bool) -> list[np.ndarray]:
    """Row positions of each clip window of one video (see module docstring), ordered by first row."""
    if num_rows <= 0:
        return []
    if overlapping:
        span = (clip_length - 1) * clip_stride + 1
        offsets = np.arange(clip_length) * clip_stride
        if num_rows < span:
            return [np.minimum(offsets, num_rows - 1)]
        return [start + offsets for start in range(num_rows - span + 1)]
    windows = []
    for offset in range(min(clip_stride, num_rows)):
        rows = np.arange(offset, num_rows, clip_stride)
        for start in range(0, len(rows), clip_length):
            chunk = rows[start:start + clip_length]
            windows.append(np.concatenate([chunk, np.full(clip_length - len(chunk), chunk[-1])]))
    return sorted(windows, key=lambda window: int(window[0]))


class FaceCropDataset(Dataset):
    """Face crops of one split.

    Args:
        rows: manifest rows with ``status == "ok"`` (any order).
        root: directory the ``path`` / ``extra_paths`` columns are relative to.
        pipeline: tensors from crops (resize, pseudo-fake, augmentation, normalisation).
        modalities: which images make a sample: ``rgb`` is ``path``, others come from ``extra_paths``.
        clip_length: 1 for frame mode, T for clip mode.
        clip_stride: rows between consecutive frames of a clip.
        overlapping_clips: every window that fits (training) or every row exactly once (evaluation).
        pseudo_fake_name: ``method`` of the pseudo-fakes (``pseudo_sbi``) when the pipeline makes pairs.
    """

    def __init__(self, rows: pd.DataFrame, root: str | os.PathLike, pipeline: SamplePipeline,
                 modalities: tuple[str, ...] = ("rgb",), clip_length: int = 1, clip_stride: int = 1,
                 overlapping_clips: bool = False, pseudo_fake_name: str = "sbi") -> None:
        if clip_length < 1 or clip_stride < 1:
            raise ValueError(f"clip_length and clip_stride must be >= 1, got {clip_length}, {clip_stride}")
        self.root = Path(root)
        self.pipeline = pipeline
        self.modalities = tuple(modalities)
        self.clip_length = int(clip_length)
        self.pseudo_fake_name = pseudo_fake_name
        rows = rows.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
        # fixed-width numpy arrays rather than Python objects: forked workers then share them without the
        # copy-on-read that reference counting causes
        self.video_ids = rows["video_id"].to_numpy(dtype=str)
        self.frame_indices = rows["frame_index"].astype(np.int64).to_numpy()
        self.labels = rows["label"].astype(np.int64).to_numpy()
        self.paths = rows["path"].to_numpy(dtype=str)
        self.methods = rows["method"].to_numpy(dtype=str)
        self.attack_types = rows["attack_type"].astype(np.int64).to_numpy()
        subjects = rows["subject"].astype(str)
        self.identities = subjects.where(subjects != "", rows["video_id"].astype(str)).to_numpy(dtype=str)
        self.extra_paths = [json.loads(text) if text else {} for text in rows["extra_paths"].astype(str)]
        self.landmarks = self._landmark_array(rows)
        for modality in self.modalities:
            if modality != "rgb" and any(modality not in extra for extra in self.extra_paths):
                raise ValueError(f"modality {modality!r} requested but some manifest rows lack "
                                 f"extra_paths[{modality!r}] (first: {self._first_missing(modality)})")
        if self.clip_length == 1:
            self.units = [np.array([i]) for i in range(len(rows))]
        else:
            self.units = []
            new_video = np.r_[True, self.video_ids[1:] != self.video_ids[:-1]] if len(rows) else np.zeros(0, bool)
            starts = np.flatnonzero(new_video)
            ends = np.r_[starts[1:], len(rows)]
            for start, end in zip(starts, ends):
                for window in clip_windows(int(end - start), self.clip_length, clip_stride, overlapping_clips):
                    self.units.append(start + window)
        self.unit_video_ids = self.video_ids[[int(u[0]) for u in self.units]]
        self.unit_labels = np.array([self.labels[u[0]] for u in self.units], dtype=np.int64)

    def _first_missing(self, modality: str) -> str:
        for video_id, extra in zip(self.video_ids, self.extra_paths):
            if modality not in extra:
                return str(video_id)
        return ""

    @staticmethod
    def _landmark_array(rows: pd.DataFrame) -> np.ndarray | None:
        """(N, 68, 2) float32 with NaN where a row has none; None when no row has landmarks."""
        values = rows["landmarks"].tolist()
        if not any(v is not None and len(v) for v in values):
            return None
        out = np.full((len(values), NUM_LANDMARKS, 2), np.nan, dtype=np.float32)
        for i, value in enumerate(values):
            if value is not None and len(value) == 2 * NUM_LANDMARKS:
                out[i] = np.asarray(value, dtype=np.float32).reshape(NUM_LANDMARKS, 2)
        return out

    def __len__(self) -> int:
        return len(self.units)

    def _frame(self, row: int) -> Frame:
        context = f"video {self.video_ids[row]}, frame {self.frame_indices[row]}"
        frame = {}
        for modality in self.modalities:
            rel = self.paths[row] if modality == "rgb" else self.extra_paths[row][modality]
            frame[modality] = read_rgb(self.root / rel, f"{modality} of {context}")
        return frame

    def __getitem__(self, index: int) -> dict[str, Any] | tuple[dict[str, Any], dict[str, Any]]:
        unit = self.units[index]
        first = int(unit[0])
        frames = [self._frame(int(row)) for row in unit]
        landmarks = self.landmarks[first] if self.landmarks is not None and self.clip_length == 1 else None
        tensors = self.pipeline(frames, landmarks, identity=str(self.identities[first]))
        meta = {
            LABEL: int(self.labels[first]),
            VIDEO_ID: str(self.video_ids[first]),
            FRAME_INDEX: int(self.frame_indices[first]),
            METHOD: str(self.methods[first]),
            ATTACK_TYPE: int(self.attack_types[first]),
        }
        if self.clip_length > 1:
            meta[FRAME_INDICES] = torch.from_numpy(self.frame_indices[unit].astype(np.int64))
        if isinstance(tensors, tuple):
            real, fake = tensors
            fake_meta = {**meta, METHOD: f"pseudo_{self.pseudo_fake_name}"}
            return {**meta, **real}, {**fake_meta, **fake}
        return {**tensors, **meta}
