"""Raw dataset -> aligned face crops + 68 landmarks + manifest (docs/architecture.md §1). Resumable and parallel.

For each video: decode N evenly spaced frames (or all), take the largest face, its 68 landmarks, crop a square
with a margin, save ``out/crops/<video_id>/<frame:06d>.<png|jpg>``; one manifest row per crop. Each finished
video leaves ``out/parts/<hash>.parquet`` (written atomically, after its crops), so a rerun skips it and a killed
run, restarted, ends with the same ``out/manifest.parquet`` as an uninterrupted one.

Finished work is keyed on the *content* of the source files, not only their path: each part file records, per
source file (the video, CASIA-SURF's depth/IR images, the ``sidecar`` backend's landmark file), its size, its
mtime and two BLAKE2b-128 digests, one of ``size + first MiB + last MiB`` (the "edge" digest, the whole file when
it is at most 2 MiB) and one of the whole file. On a rerun a finished video is kept when size and edge digest
match and, if the mtime changed too (a ``touch``, a copy without ``-p``), the whole-file digest matches; any
other change redoes the video: its part file is removed first, then its old crops, then it is processed again.
(The edge digest makes the usual check cheap, 2 MiB read per video, and catches a re-encode or a different video,
whose container header and tail differ; the whole-file digest settles the rare same-size, new-mtime case.)

SIGTERM or Ctrl-C stops cleanly: finished videos stay valid, the count of finished videos and the command that
resumes are printed, and the process exits with 128 + the signal number (143 / 130).

Failures become rows, never exceptions:
``corrupt`` / ``unreadable`` videos and ``no_face_video`` (one row each, ``frame_index = -1``), and ``no_face``
frames (one row per frame), each with a ``reason``. CASIA-SURF images are already face crops: they are copied
(or resized) with their depth and IR images.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import shlex
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_dfd.data.faces import LandmarkBackend, build_backend, crop_face, largest_face, sidecar_path
from lightning_dfd.data.layouts import (VideoRecord, index_dataset, wilddeepfake_frame_number,
                                        wilddeepfake_part_dir)
from lightning_dfd.data.manifest import MANIFEST_NAME, write_manifest
from lightning_dfd.data.video import IMAGE_SUFFIXES, VideoDecodeError, check_file, iter_frames
from lightning_dfd.io import atomic_path, write_bytes_atomic, write_text_atomic

SETTINGS_NAME = "preprocess.json"
SUMMARY_NAME = "summary.json"
# Per-video results; the record's metadata (label, split...) is joined at the end, so editing a split file
# needs no reprocessing.
PART_SCHEMA = pa.schema([
    ("video_id", pa.string()),
    ("frame_index", pa.int64()),
    ("path", pa.string()),
    ("landmarks", pa.list_(pa.float32())),
    ("box", pa.list_(pa.float32())),
    ("status", pa.string()),
    ("reason", pa.string()),
    ("extra_paths", pa.string()),
])
ALREADY_CROPPED = frozenset({"casia_surf"})
#: part-file metadata key holding the fingerprints of the sources the part was made from
SOURCES_KEY = b"lightning_dfd.sources"
EDGE_BYTES = 1 << 20  # the edge digest reads the first and the last MiB


@dataclass(frozen=True)
class CropSettings:
    """Everything that changes a crop; stored in ``out/preprocess.json`` and checked on resume."""

    frames: int
    all_frames: bool
    backend: str
    backend_options: dict
    margin: float
    size: int | None
    image_format: str
    jpeg_quality: int
    already_cropped: bool


def part_path(out: Path, video_id: str) -> Path:
    return out / "parts" / (hashlib.sha1(video_id.encode()).hexdigest()[:20] + ".parquet")


# ------------------------------------------------------------------------------------------- content keys
def edge_digest(path: Path, size: int) -> str:
    """BLAKE2b-128 of ``size`` (8 bytes) + the first and the last MiB of ``path`` (the whole file up to 2 MiB)."""
    digest = hashlib.blake2b(int(size).to_bytes(8, "little"), digest_size=16)
    with open(path, "rb") as handle:
        if size <= 2 * EDGE_BYTES:
            digest.update(handle.read())
        else:
            digest.update(handle.read(EDGE_BYTES))
            handle.seek(size - EDGE_BYTES)
            digest.update(handle.read(EDGE_BYTES))
    return digest.hexdigest()


def full_digest(path: Path, chunk: int = 4 << 20) -> str:
    """BLAKE2b-128 of the whole file."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_fingerprint(path: Path) -> dict[str, Any]:
    """``{size, mtime_ns, edge, full}`` of a file, ``{"missing": True}`` when it cannot be read."""
    try:
        stat = path.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "edge": edge_digest(path, stat.st_size),
                "full": full_digest(path)}
    except OSError:
        return {"missing": True}


def same_content(recorded: dict[str, Any], path: Path) -> bool:
    """Whether ``path`` still holds what ``recorded`` (a :func:`file_fingerprint`) describes (see module doc)."""
    try:
        stat = path.stat()
    except OSError:
        return bool(recorded.get("missing"))
    if recorded.get("missing") or stat.st_size != recorded.get("size"):
        return False
    try:
        if edge_digest(path, stat.st_size) != recorded.get("edge"):
            return False
        return stat.st_mtime_ns == recorded.get("mtime_ns") or full_digest(path) == recorded.get("full")
    except OSError:
        return False


def source_files(record: VideoRecord, root: Path, settings: CropSettings) -> dict[str, Path]:
    """Every file a record's crops are made from, by path relative to ``root``."""
    names = [record.source, *record.extra_paths.values()]
    if (root / record.source).is_dir():  # a face sequence (WildDeepfake): its images
        names = [path.relative_to(root).as_posix() for path in sequence_images(root / record.source)]
    files = {name: root / name for name in names}
    if settings.backend == "sidecar" and not settings.already_cropped:
        for name in list(files):
            sidecar = sidecar_path(root / name)
            files[sidecar.relative_to(root).as_posix()] = sidecar
    return files


def source_fingerprints(record: VideoRecord, root: Path, settings: CropSettings) -> dict[str, dict[str, Any]]:
    return {name: file_fingerprint(path) for name, path in sorted(source_files(record, root, settings).items())}


def finished_state(record: VideoRecord, root: Path, out: Path, settings: CropSettings) -> str:
    """``done`` (part file present, sources unchanged), ``todo`` (no part file) or ``changed`` (a source file
    changed since its part was written, or the part predates content keys)."""
    path = part_path(out, record.video_id)
    if not path.exists():
        return "todo"
    try:
        metadata = pq.read_schema(path).metadata or {}
        recorded = json.loads(metadata[SOURCES_KEY])
    except (KeyError, ValueError, OSError, pa.ArrowException):
        return "changed"
    files = source_files(record, root, settings)
    if set(recorded) != set(files):
        return "changed"
    return "done" if all(same_content(recorded[name], files[name]) for name in files) else "changed"


def clear_video_outputs(out: Path, video_id: str) -> None:
    """Forget a video's finished work: its part file first (so it counts as not done from then on), then the
    crop files directly in ``crops/<video_id>/`` (sub-folders belong to other videos, e.g. ``real`` and
    ``real/clip0`` of a ``folder`` dataset)."""
    part_path(out, video_id).unlink(missing_ok=True)
    crop_dir = out / "crops" / video_id
    if crop_dir.is_dir():
        for entry in crop_dir.iterdir():
            if entry.is_file() or entry.is_symlink():
                entry.unlink(missing_ok=True)


def _encode(image: np.ndarray, image_format: str, jpeg_quality: int) -> bytes:
    """PNG / JPEG bytes of an RGB (or single-channel) uint8 image."""
    import cv2

    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 3]
    ok, data = cv2.imencode("." + image_format, image, params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} image as {image_format}")
    return data.tobytes()


def _row(video_id: str, status: str, reason: str = "", frame_index: int = -1, path: str = "",
         landmarks: list[float] | None = None, box: list[float] | None = None, extra_paths: str = "") -> dict:
    return {"video_id": video_id, "frame_index": int(frame_index), "path": path, "landmarks": landmarks or [],
            "box": box or [], "status": status, "reason": reason, "extra_paths": extra_paths}


def crop_video(record: VideoRecord, root: Path, out: Path, settings: CropSettings, backend: LandmarkBackend,
               decoder: str) -> list[dict]:
    """Process one video (or single image) into crop files and part rows; failures become rows."""
    source = root / record.source
    crop_dir = Path("crops") / record.video_id
    rows: list[dict] = []
    num_frames = None if settings.all_frames else settings.frames
    try:
        for frame_index, frame in iter_frames(source, num_frames=num_frames, decoder=decoder):
            faces = backend.detect(frame, frame_index, source)
            face = largest_face(faces)
            if face is None:
                rows.append(_row(record.video_id, "no_face", f"{backend.name} found no face in frame {frame_index}",
                                 frame_index))
                continue
            crop = crop_face(frame, face.landmarks, settings.margin, settings.size, box=face.box)
            rel = crop_dir / f"{frame_index:06d}.{settings.image_format}"
            write_bytes_atomic(out / rel, _encode(crop.image, settings.image_format, settings.jpeg_quality))
            rows.append(_row(record.video_id, "ok", "", frame_index, rel.as_posix(),
                             crop.landmarks.reshape(-1).tolist(), crop.box.tolist()))
    except VideoDecodeError as err:
        return [_row(record.video_id, err.kind, err.reason)]
    except (FileNotFoundError, IndexError, ValueError) as err:  # e.g. missing or mismatched landmark sidecar
        return [_row(record.video_id, "unreadable", f"{type(err).__name__}: {err}")]
    if rows and all(row["status"] == "no_face" for row in rows):
        return [_row(record.video_id, "no_face_video",
                     f"{backend.name} found no face in any of the {len(rows)} decoded frames")]
    return rows


def sequence_images(folder: Path) -> list[Path]:
    """The images of a face-sequence folder, in frame-number order (the name carries the frame number)."""
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(images, key=lambda p: (wilddeepfake_frame_number(p), p.name))


def fit_landmarks(backend: LandmarkBackend, image: np.ndarray, path: Path) -> np.ndarray | None:
    """68 landmarks of the face that fills ``image`` (a face crop already): fitted inside the whole image by a
    backend that can (dlib's ``landmarks_in``), else the largest face the backend finds (sidecar ground truth,
    face-alignment); None when it finds none."""
    if hasattr(backend, "landmarks_in"):
        height, width = image.shape[:2]
        return backend.landmarks_in(image, np.array([0, 0, width - 1, height - 1], np.float32))
    face = largest_face(backend.detect(image, 0, path))
    return None if face is None else face.landmarks


def crop_face_sequence(record: VideoRecord, root: Path, out: Path, settings: CropSettings,
                       backend: LandmarkBackend) -> list[dict]:
    """A folder of face images (WildDeepfake): no detection, each chosen image (``frames`` evenly spaced, or all)
    is resized whole to ``size`` with its landmarks fitted; ``frame_index`` = the frame number of its name."""
    from lightning_dfd.data.video import evenly_spaced

    images = sequence_images(root / record.source)
    if not images:
        return [_row(record.video_id, "unreadable", f"no images in face sequence {root / record.source}")]
    if not settings.all_frames:
        images = [images[int(i)] for i in evenly_spaced(len(images), settings.frames)]
    rows: list[dict] = []
    for position, path in enumerate(images):
        frame_index = wilddeepfake_frame_number(path)
        frame_index = frame_index if frame_index >= 0 else position
        try:
            _, image = next(iter_frames(path))
            landmarks = fit_landmarks(backend, image, path)
        except VideoDecodeError as err:
            rows.append(_row(record.video_id, err.kind, err.reason, frame_index))
            continue
        except (FileNotFoundError, IndexError, ValueError) as err:
            return [_row(record.video_id, "unreadable", f"{type(err).__name__}: {err}")]
        if landmarks is None:
            rows.append(_row(record.video_id, "no_face", f"{backend.name} fitted no landmarks in {path.name}",
                             frame_index))
            continue
        height, width = image.shape[:2]
        crop = crop_face(image, landmarks, 0.0, settings.size, box=np.array([0, 0, width, height], np.float32))
        rel = Path("crops") / record.video_id / f"{frame_index:06d}.{settings.image_format}"
        write_bytes_atomic(out / rel, _encode(crop.image, settings.image_format, settings.jpeg_quality))
        rows.append(_row(record.video_id, "ok", "", frame_index, rel.as_posix(), crop.landmarks.reshape(-1).tolist(),
                         crop.box.tolist()))
    if all(row["status"] != "ok" for row in rows):
        return [_row(record.video_id, "no_face_video", f"no usable image in the {len(rows)} chosen")]
    return rows


def copy_cropped_sample(record: VideoRecord, root: Path, out: Path, settings: CropSettings) -> list[dict]:
    """An already-cropped image sample (CASIA-SURF colour + depth + IR): copy, or resize to ``size``."""
    import cv2

    sources = {"color": record.source, **record.extra_paths}
    stored: dict[str, str] = {}
    box: list[float] = []
    for modality, rel_source in sources.items():
        path = root / rel_source
        try:
            check_file(path)
        except VideoDecodeError as err:
            return [_row(record.video_id, err.kind, f"{modality}: {err.reason}")]
        suffix = path.suffix.lower() if settings.size is None else "." + settings.image_format
        name = "000000" + ("" if modality == "color" else f".{modality}") + suffix
        rel = Path("crops") / record.video_id / name
        image = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
        if image is None:
            return [_row(record.video_id, "corrupt", f"{modality}: OpenCV cannot decode {path}")]
        if modality == "color":
            box = [0.0, 0.0, float(image.shape[1]), float(image.shape[0])]
        if settings.size is None:
            with atomic_path(out / rel) as tmp:
                shutil.copyfile(path, tmp)
        else:
            resized = cv2.resize(image, (settings.size, settings.size), interpolation=cv2.INTER_AREA)
            if resized.ndim == 3 and resized.shape[2] == 3:
                resized = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)  # _encode expects RGB
            write_bytes_atomic(out / rel, _encode(resized, settings.image_format, settings.jpeg_quality))
        stored[modality] = rel.as_posix()
    extra = {k: v for k, v in stored.items() if k != "color"}
    return [_row(record.video_id, "ok", "", 0, stored["color"], [], box,
                 json.dumps(extra, sort_keys=True) if extra else "")]


def write_part(out: Path, video_id: str, rows: list[dict], sources: dict[str, dict[str, Any]] | None = None) -> Path:
    """The video's rows, with the fingerprints of its source files in the schema metadata; atomic."""
    path = part_path(out, video_id)
    table = pa.Table.from_pylist(rows, schema=PART_SCHEMA)
    if sources is not None:
        table = table.replace_schema_metadata({SOURCES_KEY: json.dumps(sources, sort_keys=True)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


# ------------------------------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def _init_worker(settings: CropSettings, threads: int = 1) -> None:
    import cv2

    # Ctrl-C reaches the whole process group: the main process stops the run, a worker finishes its video
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(threads)
    _WORKER["backend"] = None if settings.already_cropped else build_backend(settings.backend,
                                                                             **settings.backend_options)


def _process(record: VideoRecord, root: Path, out: Path, settings: CropSettings, decoder: str) -> tuple[str, list[str]]:
    """Worker entry: process one record, write its part file; returns (video_id, statuses of its rows).

    The sources are fingerprinted before they are read (a file changing meanwhile is redone next run), and crops
    left by an earlier, unfinished attempt are removed first."""
    sources = source_fingerprints(record, root, settings)
    clear_video_outputs(out, record.video_id)
    if settings.already_cropped:
        rows = copy_cropped_sample(record, root, out, settings)
    elif (root / record.source).is_dir():
        rows = crop_face_sequence(record, root, out, settings, _WORKER["backend"])
    else:
        rows = crop_video(record, root, out, settings, _WORKER["backend"], decoder)
    write_part(out, record.video_id, rows, sources)
    return record.video_id, [row["status"] for row in rows]


# ------------------------------------------------------------------------------------------- archives
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
UNPACKED_DIR = "unpacked"
UNPACKED_MARK = ".unpacked"


def _archive_stem(path: Path) -> str:
    return next(path.name[:-len(s)] for s in ARCHIVE_SUFFIXES if path.name.endswith(s))


def wilddeepfake_archives(root: Path) -> list[tuple[str, Path]]:
    """(``<kind>_<split>`` folder, archive) for every ``K.tar.gz`` of a WildDeepfake root."""
    found = []
    for kind in ("real", "fake"):
        for split in ("train", "test"):
            part = wilddeepfake_part_dir(root, kind, split)
            if part is not None:
                found += [(f"{kind}_{split}", p) for p in sorted(part.iterdir())
                          if p.is_file() and p.name.endswith(ARCHIVE_SUFFIXES)]
    return found


def unpack_wilddeepfake(root: Path, dest: Path, progress: bool = False) -> Path:
    """Unpack every WildDeepfake archive once into ``dest/<kind>_<split>/K/`` and return ``dest`` (``root`` itself
    when it holds no archives, i.e. is unpacked already). Resumable: an archive is extracted into a temporary
    folder that is renamed into place, then marked done, so a killed run redoes only the archive it was on.
    Members are extracted with the ``data`` filter rules (no absolute paths, links or ``..`` leaving the folder)."""
    import tarfile

    from tqdm import tqdm

    archives = wilddeepfake_archives(root)
    if not archives:
        return root
    for part, archive in tqdm(archives, desc="unpack wilddeepfake", unit="archive", disable=not progress):
        target = dest / part / _archive_stem(archive)
        if (target / UNPACKED_MARK).is_file():
            continue
        shutil.rmtree(target, ignore_errors=True)
        staging = target.with_name(f".{target.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(archive) as tar:
                for member in tar:
                    name = Path(member.name)
                    if name.is_absolute() or ".." in name.parts or not (member.isfile() or member.isdir()):
                        continue
                    tar.extract(member, staging, set_attrs=False)
        except (tarfile.TarError, OSError, EOFError) as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise ValueError(f"cannot unpack WildDeepfake archive {archive}: {err}; re-download it") from err
        staging.rename(target)
        (target / UNPACKED_MARK).write_text(str(archive) + "\n")
    return dest


# ------------------------------------------------------------------------------------------- main side
def _check_settings(out: Path, settings: CropSettings) -> None:
    """Refuse to mix crops made with other settings in one output folder."""
    path = out / SETTINGS_NAME
    wanted = asdict(settings)
    if path.exists():
        previous = json.loads(path.read_text())
        changed = {k: (previous.get(k), v) for k, v in wanted.items() if previous.get(k) != v}
        if changed:
            raise ValueError(
                f"{out} holds crops made with other settings "
                f"({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())}"
                f"; recorded in {path}). Use a new --out folder, or delete {out} to start over.")
    else:
        write_text_atomic(path, json.dumps(wanted, indent=2, sort_keys=True) + "\n")


def assemble_manifest(records: list[VideoRecord], out: Path) -> Path:
    """Join every record's part rows with its metadata, sort by (video_id, frame_index), write atomically."""
    import pandas as pd
    import pyarrow.dataset as ds

    meta = pd.DataFrame({
        "video_id": [r.video_id for r in records], "dataset": [r.dataset for r in records],
        "label": [r.label for r in records], "method": [r.method for r in records],
        "attack_type": [r.attack_type for r in records], "compression": [r.compression for r in records],
        "split": [r.split for r in records], "subject": [r.subject for r in records],
        "source_video": [r.source for r in records]})
    paths = [str(part_path(out, r.video_id)) for r in records]
    parts = ds.dataset(paths, schema=PART_SCHEMA, format="parquet").to_table() if paths else PART_SCHEMA.empty_table()
    rows = parts.to_pandas().merge(meta, on="video_id", how="left", validate="many_to_one")
    rows = rows.sort_values(["video_id", "frame_index"], kind="stable").reset_index(drop=True)
    return write_manifest(rows, out / MANIFEST_NAME)


def preprocess(
    dataset: str,
    root: Path,
    out: Path,
    frames: int = 32,
    all_frames: bool = False,
    backend: Literal["sidecar", "dlib", "face_alignment"] = "sidecar",
    decoder: Literal["auto", "decord", "pyav"] = "auto",
    margin: float = 0.3,
    size: int | None = 256,
    image_format: Literal["png", "jpg"] = "png",
    workers: int = 1,
    jpeg_quality: int = 95,
    dataset_options: dict[str, Any] | None = None,
    backend_options: dict[str, Any] | None = None,
    already_cropped: bool | None = None,
    limit: int | None = None,
    progress: bool = True,
    start_method: Literal["spawn", "forkserver", "fork"] = "spawn",
) -> Path:
    """Decode, detect, align and crop a raw dataset into ``out``; returns the manifest path.

    Args:
        dataset: ``ffpp``, ``celebdf_v1``, ``celebdf_v2``, ``dfdc``, ``dfdc_preview``, ``casia_surf``, ``uadfv``,
            ``dfd``, ``deeperforensics``, ``wilddeepfake`` (archives unpacked once into ``out/unpacked``; its
            images are faces already: resized whole, landmarks fitted), ``folder``.
        root: the dataset's raw folder in its official layout (docs/architecture.md §3).
        out: output folder (crops/, parts/, manifest.parquet, summary.json); rerunning resumes.
        frames: evenly spaced frames per video.
        all_frames: take every frame instead.
        backend: landmark backend: ``sidecar`` (synthetic twin ground truth), ``dlib``, ``face_alignment``.
        decoder: ``auto`` (decord, PyAV fallback), ``decord`` or ``pyav``.
        margin: the square crop's side is ``(1 + margin)`` x the face's larger side.
        size: crops resized to ``size`` x ``size`` pixels (``None``: native size).
        image_format: ``png`` (lossless) or ``jpg``.
        workers: worker processes (1: run in this process).
        jpeg_quality: JPEG quality when ``image_format="jpg"``.
        dataset_options: options of the dataset indexer (e.g. ``{"compressions": ["c23"]}`` for FF++).
        backend_options: options of the landmark backend (e.g. ``{"upsample": 0}`` for dlib).
        already_cropped: images are face crops already (default: true for ``casia_surf``): copy or resize only.
        limit: process only the first ``limit`` videos (sorted by id); the manifest holds those.
        progress: show a tqdm bar.
        start_method: how worker processes start (``spawn`` is safe with threaded native libraries; it
            re-imports the caller's ``__main__``, so scripts need an ``if __name__ == "__main__"`` guard).
    """
    from tqdm import tqdm

    root, out = Path(root), Path(out)
    if frames <= 0 and not all_frames:
        raise ValueError(f"frames must be positive, got {frames}")
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if dataset == "wilddeepfake":  # archives of face sequences: unpacked once into out/unpacked
        root = unpack_wilddeepfake(root, out / UNPACKED_DIR, progress)
    records = index_dataset(dataset, root, **(dataset_options or {}))
    if limit is not None:
        records = records[:limit]
    cropped = dataset in ALREADY_CROPPED if already_cropped is None else already_cropped
    settings = CropSettings(frames=frames, all_frames=all_frames, backend=backend,
                            backend_options=dict(backend_options or {}), margin=margin, size=size,
                            image_format=image_format, jpeg_quality=jpeg_quality, already_cropped=cropped)
    # fail fast on a missing package / model file, before any worker starts
    landmark_backend = None if cropped else build_backend(backend, **settings.backend_options)
    out.mkdir(parents=True, exist_ok=True)
    _check_settings(out, settings)
    states = {r.video_id: finished_state(r, root, out, settings) for r in records}
    changed = [r for r in records if states[r.video_id] == "changed"]
    for record in changed:  # from here on they count as not done, even if this run is stopped
        part_path(out, record.video_id).unlink(missing_ok=True)
    todo = [r for r in records if states[r.video_id] != "done"]
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="video", desc=f"preprocess {dataset}", disable=not progress)
    resume_command = preprocess_command({
        "dataset": dataset, "root": root, "out": out, "frames": frames, "all_frames": all_frames, "backend": backend,
        "decoder": decoder, "margin": margin, "size": size, "image_format": image_format, "workers": workers,
        "jpeg_quality": jpeg_quality, "dataset_options": dataset_options, "backend_options": backend_options,
        "already_cropped": already_cropped, "limit": limit, "progress": progress, "start_method": start_method})
    try:
        with stop_on_signals():
            if workers <= 1:
                _WORKER["backend"] = landmark_backend
                for record in todo:
                    _process(record, root, out, settings, decoder)
                    bar.update()
            else:
                _run_pool(todo, root, out, settings, decoder, workers, start_method, bar)
    except Interrupted as stop:
        bar.close()
        finished = sum(part_path(out, r.video_id).exists() for r in records)
        print(f"\npreprocess stopped by {stop.name}: {finished} of {len(records)} videos finished "
              f"({finished - (len(records) - len(todo))} in this run), their crops and parts kept in {out}; "
              f"{len(records) - finished} left. The same command resumes:\n  {resume_command}",
              file=sys.stderr, flush=True)
        raise SystemExit(128 + stop.signum) from None
    bar.close()
    elapsed = time.perf_counter() - started
    manifest = assemble_manifest(records, out)
    write_summary(manifest, out, processed=len(todo), skipped=len(records) - len(todo), seconds=elapsed,
                  changed=len(changed))
    return manifest


def _run_pool(todo: list[VideoRecord], root: Path, out: Path, settings: CropSettings, decoder: str, workers: int,
              start_method: str, bar) -> None:
    context = multiprocessing.get_context(start_method)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(settings,))
    try:
        futures = [pool.submit(_process, record, root, out, settings, decoder) for record in todo]
        for future in as_completed(futures):
            future.result()
            bar.update()
    except (Interrupted, BrokenProcessPool) as err:
        # stopped: drop the queued videos, let running ones finish (their parts are atomic); workers killed by
        # the same signal (SIGTERM to the process group) break the pool, which is a stop too
        pool.shutdown(wait=True, cancel_futures=True)
        if isinstance(err, BrokenProcessPool) and STOP.signum is None:
            raise
        raise Interrupted(STOP.signum or signal.SIGTERM) from None
    pool.shutdown(wait=True)


class Interrupted(BaseException):
    """SIGTERM / SIGINT received while preprocessing (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        self.name = signal.Signals(self.signum).name
        super().__init__(self.name)


class _StopFlag:
    signum: int | None = None


STOP = _StopFlag()


def _raise_interrupted(signum: int, frame) -> None:
    if STOP.signum is None:  # a second signal while the running videos finish is ignored
        STOP.signum = signum
        raise Interrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block, SIGTERM and SIGINT raise :class:`Interrupted` (main thread only; elsewhere a no-op)."""
    STOP.signum = None
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, _raise_interrupted)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def preprocess_command(arguments: dict[str, Any]) -> str:
    """The ``python -m lightning_dfd preprocess ...`` command line of these arguments (non-defaults only; paths
    made absolute), printed when a run is stopped: rerunning it resumes."""
    import inspect

    defaults = {name: p.default for name, p in inspect.signature(preprocess).parameters.items()}
    words = ["python", "-m", "lightning_dfd", "preprocess"]
    for name, value in arguments.items():
        if name in defaults and defaults[name] is not inspect.Parameter.empty and value == defaults[name]:
            continue
        if isinstance(value, Path):
            value = str(value.absolute())  # runs from any folder
        text = value if isinstance(value, str) else json.dumps(value)
        words += [f"--{name}", text]
    return shlex.join(words)


def write_summary(manifest: Path, out: Path, processed: int, skipped: int, seconds: float, changed: int = 0) -> dict:
    """Counts per status (rows and videos), print them and write ``out/summary.json``."""
    import pandas as pd

    table = pd.read_parquet(manifest, columns=["video_id", "status"])
    video_status = table.groupby("video_id")["status"].agg(lambda s: "ok" if (s == "ok").any() else s.iloc[0])
    summary = {
        "videos": int(table["video_id"].nunique()),
        "rows_by_status": dict(sorted(Counter(table["status"]).items())),
        "videos_by_status": dict(sorted(Counter(video_status).items())),
        "crops": int((table["status"] == "ok").sum()),
        "processed_this_run": processed,
        "skipped_already_done": skipped,
        "redone_source_changed": changed,
        "seconds_this_run": round(seconds, 3),
        "videos_per_second_this_run": round(processed / seconds, 3) if seconds > 0 and processed else None,
        "manifest": str(manifest),
    }
    write_text_atomic(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    print(f"preprocess: {summary['videos']} videos, {summary['crops']} crops; rows by status "
          f"{summary['rows_by_status']}; videos by status {summary['videos_by_status']}; "
          f"{processed} processed now ({changed} redone: source file changed), {skipped} already done -> {manifest}")
    return summary
