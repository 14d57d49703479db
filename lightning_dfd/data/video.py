"""Decode frames from videos (decord first, PyAV fallback) and from still images, with one API.

``read_frames(path, indices=[...])`` or ``read_frames(path, num_frames=N)`` returns ``(frames, indices)``:
RGB uint8 frames of shape (N, H, W, 3) and the frame indices actually read (positions in decode order, the
same numbering the synthetic twin's ``X.landmarks.npy`` sidecar uses). Image files are one-frame videos.
Every failure raises :class:`VideoDecodeError` with ``kind`` ``"unreadable"`` (missing, unreadable, or not a
media file at all) or ``"corrupt"`` (a media container that fails to decode, e.g. a truncated mp4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

Decoder = Literal["auto", "decord", "pyav"]
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv"})


class VideoDecodeError(RuntimeError):
    """A video or image could not be decoded.

    Attributes:
        path: the file.
        reason: what went wrong, in words.
        kind: ``"unreadable"`` (cannot be opened, or not a media file) or ``"corrupt"`` (a media file that
            fails to decode: truncated or damaged).
    """

    def __init__(self, path: str | os.PathLike, reason: str, kind: Literal["corrupt", "unreadable"] = "corrupt"):
        self.path = str(path)
        self.reason = reason
        self.kind = kind
        super().__init__(f"cannot decode {self.path} ({kind}): {reason}")


def is_image(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def evenly_spaced(n_total: int, n: int) -> np.ndarray:
    """``n`` frame indices at the centres of ``n`` equal segments of ``[0, n_total)``: ``floor((i + 1/2) n_total / n)``.

    All frames when ``n >= n_total``; the indices are strictly increasing (segments are at least one frame wide).
    """
    if n_total <= 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 0:
        raise ValueError(f"number of frames must be positive, got {n}")
    if n >= n_total:
        return np.arange(n_total, dtype=np.int64)
    return np.floor((np.arange(n) + 0.5) * n_total / n).astype(np.int64)


def _looks_like_media(path: Path) -> bool:
    """Sniff the first bytes for a known video container signature (mp4/mov, mkv/webm, avi, flv, mpeg, ogg, asf)."""
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if len(head) < 12:
        return False
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip", b"pnot"):
        return True
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"OggS", b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3",
                        b"\x30\x26\xb2\x75")):
        return True
    if head[:4] == b"RIFF" and head[8:12] in (b"AVI ", b"AVIX"):
        return True
    return head[0] == 0x47 and len(head) > 188 and head[188] == 0x47  # MPEG transport stream


def _looks_like_image(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(16)
    return (head.startswith((b"\xff\xd8\xff", b"\x89PNG", b"BM", b"II*\x00", b"MM\x00*"))
            or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"))


def check_file(path: Path) -> None:
    """Raise ``unreadable`` for files the OS cannot read or that are not media at all."""
    if not path.exists():
        raise VideoDecodeError(path, "file does not exist", "unreadable")
    if not path.is_file():
        raise VideoDecodeError(path, "not a regular file", "unreadable")
    try:
        size = path.stat().st_size
        if size == 0:
            raise VideoDecodeError(path, "file is empty (0 bytes)", "unreadable")
        if is_image(path) and not _looks_like_image(path):
            raise VideoDecodeError(path, "no image signature (JPEG/PNG/BMP/TIFF/WebP) in the first bytes: not an "
                                         "image file", "unreadable")
        if not is_image(path) and not _looks_like_media(path):
            raise VideoDecodeError(path, "no video container signature in the first bytes: not a video file "
                                         "(wrong extension, or a download error page?)", "unreadable")
    except OSError as err:
        raise VideoDecodeError(path, f"cannot read the file: {err}", "unreadable") from err


def _read_image(path: Path) -> np.ndarray:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise VideoDecodeError(path, "OpenCV cannot decode this image (damaged or not an image)", "corrupt")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _count_decord(path: Path) -> int:
    import decord

    try:
        return len(decord.VideoReader(str(path), num_threads=1))
    except Exception as err:  # decord raises RuntimeError / DECORDError
        raise VideoDecodeError(path, f"decord: {_first_line(err)}") from err


def _count_pyav(path: Path) -> int:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "the file holds no video stream")
            stream = container.streams.video[0]
            if stream.frames > 0:
                return int(stream.frames)
            return sum(1 for _ in container.decode(stream))  # containers without a frame count: decode all
    except VideoDecodeError:
        raise
    except Exception as err:
        raise VideoDecodeError(path, f"PyAV: {_first_line(err)}") from err


def _decord_frames(path: Path, indices: np.ndarray | None, num_frames: int | None, chunk: int,
                   resolved: list[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB frame) with decord, ``chunk`` frames per ``get_batch``; the full index list is
    appended to ``resolved`` once known."""
    import decord

    try:
        reader = decord.VideoReader(str(path), num_threads=1)
        total = len(reader)
    except Exception as err:  # decord raises RuntimeError / DECORDError
        raise VideoDecodeError(path, f"decord: {_first_line(err)}") from err
    if indices is None:
        indices = evenly_spaced(total, num_frames) if num_frames else np.arange(total)
    indices = _check_indices(path, indices, total)
    if len(indices) == 0:
        raise VideoDecodeError(path, "the video has no frames")
    if resolved is not None:
        resolved.extend(indices.tolist())
    for start in range(0, len(indices), chunk):
        part = indices[start:start + chunk]
        try:
            batch = reader.get_batch(part.tolist()).asnumpy()
        except Exception as err:
            raise VideoDecodeError(path, f"decord: {_first_line(err)}") from err
        for index, frame in zip(part, batch):
            yield int(index), np.ascontiguousarray(frame)


def _pyav_frames(path: Path, indices: np.ndarray | None, num_frames: int | None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB frame) decoding sequentially with PyAV (frame-exact positions)."""
    import av

    if indices is None and num_frames:
        indices = evenly_spaced(_count_pyav(path), num_frames)
    wanted = None if indices is None else {int(i) for i in indices}
    last = None if indices is None else (max(wanted) if wanted else -1)
    found = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "the file holds no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for position, frame in enumerate(container.decode(stream)):
                if last is not None and position > last:
                    break
                if wanted is None or position in wanted:
                    found += 1
                    yield position, frame.to_ndarray(format="rgb24")
    except VideoDecodeError:
        raise
    except Exception as err:
        raise VideoDecodeError(path, f"PyAV: {_first_line(err)}") from err
    if found == 0:
        raise VideoDecodeError(path, "the video has no decodable frames")
    if wanted is not None and found < len(wanted):
        raise VideoDecodeError(path, f"{len(wanted) - found} of the requested frames lie past the end of the stream "
                                     f"(last decodable frame < {last}): truncated video?")


def _check_indices(path: Path, indices: Sequence[int] | np.ndarray, total: int) -> np.ndarray:
    indices = np.unique(np.asarray(indices, dtype=np.int64))
    if len(indices) and (indices[0] < 0 or indices[-1] >= total):
        raise VideoDecodeError(path, f"frame indices {indices.tolist()[:5]}... outside [0, {total})")
    return indices


def _first_line(err: BaseException) -> str:
    """First line of an error message without decord's ``[hh:mm:ss] file.cc:N:`` prefix (reasons stay
    reproducible run to run)."""
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    return re.sub(r"^\[\d{2}:\d{2}:\d{2}\] \S+:\d+: ", "", line)


def frame_count(path: str | os.PathLike, decoder: Decoder = "auto") -> int:
    """Number of frames (1 for an image); the container's count when it has one, else decoded."""
    path = Path(path)
    check_file(path)
    if is_image(path):
        _read_image(path)
        return 1
    if decoder == "decord":
        return _count_decord(path)
    if decoder == "pyav":
        return _count_pyav(path)
    try:
        return _count_decord(path)
    except (VideoDecodeError, ImportError):
        return _count_pyav(path)


def iter_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    num_frames: int | None = None,
    decoder: Decoder = "auto",
    chunk: int = 16,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, RGB uint8 (H, W, 3))`` in increasing index order; arguments as :func:`read_frames`.

    Memory stays at ``chunk`` frames, so whole long videos can be streamed. With ``decoder="auto"`` a decord
    failure (at open or mid-stream) continues with PyAV for the frames not yet yielded.
    """
    path = Path(path)
    if decoder not in ("auto", "decord", "pyav"):
        raise ValueError(f"decoder must be 'auto', 'decord' or 'pyav', got {decoder!r}")
    check_file(path)
    if indices is not None:
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) == 0:
            raise ValueError("read_frames: empty list of frame indices")
    if is_image(path):
        if indices is not None and indices.tolist() != [0]:
            raise VideoDecodeError(path, f"an image has only frame 0, asked for {indices.tolist()[:5]}")
        yield 0, _read_image(path)
        return
    if decoder == "pyav":
        yield from _pyav_frames(path, indices, num_frames)
        return
    done: list[int] = []
    resolved: list[int] = []
    try:
        for index, frame in _decord_frames(path, indices, num_frames, chunk, resolved):
            done.append(index)
            yield index, frame
        return
    except (VideoDecodeError, ImportError) as decord_error:
        if decoder == "decord":
            raise
        failure = decord_error
    if resolved:  # decord failed mid-stream: PyAV reads the rest of the same index list
        indices = np.setdiff1d(np.asarray(resolved, dtype=np.int64), np.asarray(done, dtype=np.int64))
        if len(indices) == 0:
            return
    try:
        for index, frame in _pyav_frames(path, indices, num_frames):
            yield index, frame
    except VideoDecodeError as pyav_error:
        raise VideoDecodeError(path, f"{pyav_error.reason}; {getattr(failure, 'reason', failure)}",
                               pyav_error.kind) from pyav_error


def read_frames(
    path: str | os.PathLike,
    indices: Sequence[int] | np.ndarray | None = None,
    num_frames: int | None = None,
    decoder: Decoder = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Decode frames as RGB uint8 ``(N, H, W, 3)`` plus the (sorted, unique) frame indices read.

    Args:
        path: a video file, or an image file (one frame, index 0).
        indices: frame positions to read (decode order, from 0); ``None`` with ``num_frames`` set picks
            ``evenly_spaced(frame_count, num_frames)``; both ``None``: every frame.
        num_frames: how many evenly spaced frames to read (ignored when ``indices`` is given).
        decoder: ``"decord"``, ``"pyav"``, or ``"auto"`` (decord, then PyAV when decord is missing or fails).

    Raises:
        VideoDecodeError: missing/unreadable/non-media file (``kind="unreadable"``) or a damaged or truncated
            video, or requested frames past its end (``kind="corrupt"``).
    """
    pairs = list(iter_frames(path, indices, num_frames, decoder))
    return np.stack([frame for _, frame in pairs]), np.array([index for index, _ in pairs], dtype=np.int64)


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: int = 25, crf: int = 18,
                codec: str = "libx264") -> Path:
    """Encode RGB uint8 frames (N, H, W, 3) as H.264 (yuv420p, even sizes) at constant quality ``crf``; atomic."""
    import av

    from lightning_dfd.io import atomic_path

    path = Path(path)
    frames = [np.ascontiguousarray(frame, dtype=np.uint8) for frame in frames]
    if not frames:
        raise ValueError(f"write_video {path}: no frames")
    height, width = frames[0].shape[:2]
    if height % 2 or width % 2:
        raise ValueError(f"write_video {path}: H.264 yuv420p needs even sizes, got {width}x{height}")
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format=path.suffix.lstrip(".") or "mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf)}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
