"""Hand-built manifests of random face crops for DataModule tests (no synth / preprocess needed).

Every crop is a small PNG written with OpenCV; its pixel values encode nothing but randomness unless a test
passes ``fill`` (a constant colour, so a test can recognise which file a sample came from).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from lightning_dfd.data.manifest import DEFAULTS, write_manifest


def write_crop(root: Path, rel: str, size: tuple[int, int], rng: np.random.Generator,
               fill: tuple[int, int, int] | None = None) -> None:
    """Write an RGB crop (H, W) = size as PNG at root/rel."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if fill is None:
        image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    else:
        image = np.empty((*size, 3), dtype=np.uint8)
        image[:] = fill
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def row(**fields) -> dict:
    """A complete manifest row (every column set, so no nulls reach the Parquet file)."""
    out = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()}
    out.update(fields)
    return out


def random_landmarks(rng: np.random.Generator, size: tuple[int, int]) -> list[float]:
    h, w = size
    points = np.stack([rng.uniform(2, w - 3, 68), rng.uniform(2, h - 3, 68)], axis=1)
    return points.astype(np.float32).reshape(-1).tolist()


def build_manifest(root: Path, videos: list[dict], frames: int = 3, size: tuple[int, int] = (40, 48),
                   seed: int = 0, frame_step: int = 10, landmarks: bool = True,
                   fill: Callable[[dict, int], tuple[int, int, int]] | None = None,
                   modalities: tuple[str, ...] = ()) -> Path:
    """Write crops + ``manifest.parquet`` under root for ``videos`` (dicts of manifest fields, at least
    ``video_id`` and ``label``); each video gets ``frames`` rows at frame indices 0, frame_step, ...
    ``modalities`` (e.g. ``("depth", "ir")``) adds extra crops referenced by ``extra_paths``."""
    rng = np.random.default_rng(seed)
    rows = []
    for video in videos:
        count = video.pop("frames", frames)
        for k in range(count):
            frame_index = k * frame_step
            rel = f"crops/{video['video_id']}/{frame_index:06d}.png"
            write_crop(root, rel, size, rng, fill(video, k) if fill else None)
            extra = {}
            for modality in modalities:
                extra_rel = f"crops/{video['video_id']}/{frame_index:06d}.{modality}.png"
                write_crop(root, extra_rel, size, rng, fill(dict(video, modality=modality), k) if fill else None)
                extra[modality] = extra_rel
            rows.append(row(frame_index=frame_index, path=rel, status="ok",
                            landmarks=random_landmarks(rng, size) if landmarks else [],
                            extra_paths=json.dumps(extra) if extra else "", **video))
    return write_manifest(rows, root / "manifest.parquet")


def ffpp_videos(splits: dict[str, list[str]], methods=("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures"),
                compression: str = "c23") -> list[dict]:
    """FF++-like video dicts: per target id a real ``youtube/<c>/<id>`` and one fake per method."""
    videos = []
    for split, ids in splits.items():
        for vid in ids:
            videos.append({"dataset": "ffpp", "video_id": f"youtube/{compression}/{vid}", "label": 0, "method": "real",
                               "compression": compression, "split": split, "subject": vid})
            for method in methods:
                videos.append({"dataset": "ffpp", "video_id": f"{method}/{compression}/{vid}_9{vid[-2:]}", "label": 1,
                                   "method": method, "compression": compression, "split": split, "subject": vid})
    return videos
