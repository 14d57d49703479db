"""Write twin videos (H.264 via PyAV) and their landmark sidecars, atomically.

Qualities stand in for FF++'s: ``raw`` = x264 lossless (crf 0), ``c23`` = crf 23, ``c40`` = crf 40 (FF++
itself was compressed with H.264 at these constant rate factors). Next to every ``X.mp4`` lies
``X.landmarks.npy``: float32 (T, 68, 2), (x, y) pixels of each encoded frame. That file name is the contract
with the ``sidecar`` landmark backend of the preprocessing.
"""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np

from lightning_dfd.io import atomic_path, write_bytes_atomic

QUALITY_CRF: dict[str, int] = {"raw": 0, "c23": 23, "c40": 40}
LANDMARK_SIDECAR_SUFFIX = ".landmarks.npy"


def crf_of(quality: str) -> int:
    """x264 constant rate factor of a quality name (``raw``, ``c23``, ``c40``)."""
    if quality not in QUALITY_CRF:
        raise ValueError(f"unknown quality {quality!r}; choose from {sorted(QUALITY_CRF)}")
    return QUALITY_CRF[quality]


def landmark_sidecar_path(video_path: str | Path) -> Path:
    """``dir/X.mp4`` -> ``dir/X.landmarks.npy``."""
    video_path = Path(video_path)
    return video_path.with_name(video_path.stem + LANDMARK_SIDECAR_SUFFIX)


def write_video(path: str | Path, frames: np.ndarray, crf: int, fps: int = 25) -> None:
    """Encode uint8 RGB frames (T, H, W, 3) as H.264 yuv420p MP4 at ``crf`` (single-threaded: bit-exact)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{path}: frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"{path}: yuv420p needs even frame sides, got {frames.shape[2]}x{frames.shape[1]}")
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=int(fps),
                                      options={"crf": str(int(crf)), "preset": "medium", "threads": "1"})
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def write_landmarks(video_path: str | Path, landmarks: np.ndarray) -> Path:
    """Write the (T, 68, 2) float32 sidecar next to ``video_path``; returns its path."""
    landmarks = np.asarray(landmarks, dtype=np.float32)
    if landmarks.ndim != 3 or landmarks.shape[1:] != (68, 2):
        raise ValueError(f"{video_path}: landmarks must be (T, 68, 2), got {landmarks.shape}")
    buffer = io.BytesIO()
    np.save(buffer, landmarks, allow_pickle=False)
    sidecar = landmark_sidecar_path(video_path)
    write_bytes_atomic(sidecar, buffer.getvalue())
    return sidecar


def read_video(path: str | Path) -> np.ndarray:
    """Decode all frames of a video as uint8 RGB (T, H, W, 3) with PyAV (used by tests and checks)."""
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
