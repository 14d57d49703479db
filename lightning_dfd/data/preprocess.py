"""Raw dataset -> aligned face crops + 68 landmarks + manifest (DESIGN.md §2, step 1). Resumable and parallel.

For each video: decode N evenly spaced frames (or all), take the largest face, its 68 landmarks, crop a square
with a margin, save ``out/crops/<video_id>/<frame:06d>.<png|jpg>``; one manifest row per crop. Each finished
video leaves ``out/parts/<hash>.parquet`` (written atomically), so a rerun skips it and a killed run, restarted,
ends with the same ``out/manifest.parquet`` as an uninterrupted one. Failures become rows, never exceptions:
``corrupt`` / ``unreadable`` videos and ``no_face_video`` (one row each, ``frame_index = -1``), and ``no_face``
frames (one row per frame), each with a ``reason``. CASIA-SURF images are already face crops: they are copied
(or resized) with their depth and IR images.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lightning_dfd.data.faces import LandmarkBackend, build_backend, crop_face, largest_face
from lightning_dfd.data.layouts import VideoRecord, index_dataset
from lightning_dfd.data.manifest import MANIFEST_NAME, write_manifest
from lightning_dfd.data.video import VideoDecodeError, check_file, iter_frames
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


def write_part(out: Path, video_id: str, rows: list[dict]) -> Path:
    path = part_path(out, video_id)
    table = pa.Table.from_pylist(rows, schema=PART_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


# ------------------------------------------------------------------------------------------ worker side
_WORKER: dict[str, Any] = {}


def _init_worker(settings: CropSettings, threads: int = 1) -> None:
    import cv2

    cv2.setNumThreads(threads)
    _WORKER["backend"] = None if settings.already_cropped else build_backend(settings.backend,
                                                                             **settings.backend_options)


def _process(record: VideoRecord, root: Path, out: Path, settings: CropSettings, decoder: str) -> tuple[str, list[str]]:
    """Worker entry: process one record, write its part file; returns (video_id, statuses of its rows)."""
    if settings.already_cropped:
        rows = copy_cropped_sample(record, root, out, settings)
    else:
        rows = crop_video(record, root, out, settings, _WORKER["backend"], decoder)
    write_part(out, record.video_id, rows)
    return record.video_id, [row["status"] for row in rows]


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
                f"{out} holds crops made with other settings ({', '.join(f'{k}: {a!r} -> {b!r}' for k, (a, b) in changed.items())}"
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
        dataset: ``ffpp``, ``celebdf_v1``, ``celebdf_v2``, ``dfdc``, ``dfdc_preview``, ``casia_surf``, ``folder``.
        root: the dataset's raw folder in its official layout (DESIGN.md §3).
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
    todo = [r for r in records if not part_path(out, r.video_id).exists()]
    started = time.perf_counter()
    bar = tqdm(total=len(todo), unit="video", desc=f"preprocess {dataset}", disable=not progress)
    if workers <= 1:
        _WORKER["backend"] = landmark_backend
        for record in todo:
            _process(record, root, out, settings, decoder)
            bar.update()
    else:
        context = multiprocessing.get_context(start_method)
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                                 initargs=(settings,)) as pool:
            futures = [pool.submit(_process, record, root, out, settings, decoder) for record in todo]
            for future in as_completed(futures):
                future.result()
                bar.update()
    bar.close()
    elapsed = time.perf_counter() - started
    manifest = assemble_manifest(records, out)
    write_summary(manifest, out, processed=len(todo), skipped=len(records) - len(todo), seconds=elapsed)
    return manifest


def write_summary(manifest: Path, out: Path, processed: int, skipped: int, seconds: float) -> dict:
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
        "seconds_this_run": round(seconds, 3),
        "videos_per_second_this_run": round(processed / seconds, 3) if seconds > 0 and processed else None,
        "manifest": str(manifest),
    }
    write_text_atomic(out / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")
    print(f"preprocess: {summary['videos']} videos, {summary['crops']} crops; rows by status "
          f"{summary['rows_by_status']}; videos by status {summary['videos_by_status']}; "
          f"{processed} processed now, {skipped} already done -> {manifest}")
    return summary
