"""Any folder of face crops, a manifest, or raw videos: data for ``predict`` (and ``test`` when labels are known).

``path`` may be

* a manifest (``manifest.parquet`` or the folder holding it): used as is;
* a folder tree of face-crop images: one row per image; the images of one folder form one "video" (id = the
  folder relative to ``path``, ``.`` -> the folder's name), ordered by file name; label from the nearest parent
  folder named ``real`` (0) or ``fake`` (1), else -1 (unknown, never counted in metrics);
* a video file, or a folder holding videos: run ``preprocess`` (dataset ``folder``) into ``cache_dir`` and read its
  manifest. Preprocess resumes on the *content* of each video (size, mtime, BLAKE2b digests; see
  :mod:`lightning_dfd.data.preprocess`), so a second run reuses the crops of unchanged videos and redoes a video
  replaced under the same name (never an old score for a new file).

Where the crops of videos go: ``cache_dir`` when given (``--data.init_args.cache_dir``); else
``$LIGHTNING_DFD_CACHE/predict/<name>-<key>`` (default ``$XDG_CACHE_HOME/lightning_dfd``, i.e.
``~/.cache/lightning_dfd``), where ``key`` hashes the absolute path, ``frames`` and ``landmark_backend`` (so
changing either uses a new folder instead of mixing crops). The folder is printed when it is used; delete it to
free the space.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from lightning_dfd.data.manifest import MANIFEST_NAME, normalise, read_manifest
from lightning_dfd.data.video import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from lightning_dfd.datamodules.base import FaceForgeryDataModule, manifest_location

Source = Literal["manifest", "images", "videos"]


def _media(folder: Path, suffixes: frozenset[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def folder_label(relative: Path) -> int:
    """0 / 1 from the nearest parent folder named ``real`` / ``fake`` (case-insensitive), else -1."""
    for part in reversed(relative.parts[:-1]):
        if part.lower() in ("real", "fake"):
            return int(part.lower() == "fake")
    return -1


def image_rows(root: Path, images: list[Path]) -> pd.DataFrame:
    """Manifest rows for face-crop images under ``root`` (see module docstring)."""
    rows = []
    position: dict[str, int] = {}
    for image in images:
        relative = image.relative_to(root)
        parent = relative.parent.as_posix()
        video_id = root.name if parent == "." else parent
        index = position.get(video_id, 0)
        position[video_id] = index + 1
        label = folder_label(relative)
        rows.append({"dataset": "folder", "video_id": video_id, "frame_index": index, "path": relative.as_posix(),
                     "label": label, "method": {0: "real", 1: "fake"}.get(label, ""),
                     "source_video": relative.as_posix(), "split": "test"})
    return normalise(rows)


def cache_root() -> Path:
    """Root of lightning-dfd's caches: ``$LIGHTNING_DFD_CACHE``, else ``$XDG_CACHE_HOME/lightning_dfd``, else
    ``~/.cache/lightning_dfd`` (per user, unlike the shared system temp dir, and kept across reboots)."""
    if os.environ.get("LIGHTNING_DFD_CACHE"):
        return Path(os.environ["LIGHTNING_DFD_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "lightning_dfd"


class FaceFolderDataModule(FaceForgeryDataModule):
    """Face crops (or videos to crop) from any folder, for prediction.

    Args:
        path: manifest, folder of face-crop images, video file, or folder of videos (module docstring).
        cache_dir: where videos are preprocessed (default: ``$LIGHTNING_DFD_CACHE/predict/<name>-<key>``, else
            ``~/.cache/lightning_dfd/predict/...``; see the module docstring).
        frames: evenly spaced frames decoded per video.
        landmark_backend: face/landmark backend for videos: ``dlib`` or ``face_alignment`` (``sidecar`` only for
            the synthetic twin).
        **kwargs: every other argument of :class:`FaceForgeryDataModule` (``batch_size``, ``image_size``,
            ``pseudo_fake``, ``targets_transform``, ``balance``, ...); the CLI lists and checks them all.
    """

    def __init__(
        self,
        path: str,
        cache_dir: str | None = None,
        frames: int = 32,
        landmark_backend: Literal["dlib", "face_alignment", "sidecar"] = "dlib",
        **kwargs: Any,
    ) -> None:
        super().__init__(path=path, **kwargs)
        self.cache_dir = cache_dir
        self.frames = frames
        self.landmark_backend = landmark_backend

    # ------------------------------------------------------------------ where the rows come from
    @property
    def source(self) -> Source:
        path = Path(self.path).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: pass a manifest, a folder of face crops, a video file "
                                    f"or a folder of videos as `path`.")
        if path.is_file():
            suffix = path.suffix.lower()
            if suffix == ".parquet":
                return "manifest"
            if suffix in VIDEO_SUFFIXES:
                return "videos"
            if suffix in IMAGE_SUFFIXES:
                return "images"
            raise ValueError(f"{path}: not a manifest (.parquet), image ({sorted(IMAGE_SUFFIXES)}) or video "
                             f"({sorted(VIDEO_SUFFIXES)})")
        if (path / MANIFEST_NAME).is_file():
            return "manifest"
        if _media(path, VIDEO_SUFFIXES):
            return "videos"
        if _media(path, IMAGE_SUFFIXES):
            return "images"
        raise FileNotFoundError(f"{path} holds no manifest, images or videos")

    @property
    def cache_path(self) -> Path:
        """Preprocess output folder for video sources: ``cache_dir``, else a folder of :func:`cache_root` keyed by
        the absolute path, ``frames`` and ``landmark_backend`` (module docstring)."""
        if self.cache_dir is not None:
            return Path(self.cache_dir).expanduser()
        resolved = Path(self.path).expanduser().resolve()
        identity = f"{resolved}\nframes={self.frames}\nbackend={self.landmark_backend}"
        key = hashlib.sha1(identity.encode()).hexdigest()[:12]
        return cache_root() / "predict" / f"{resolved.stem or 'root'}-{key}"

    @property
    def manifest_path(self) -> Path:
        source = self.source
        if source == "manifest":
            return manifest_location(self.path)[0]
        if source == "videos":
            return self.cache_path / MANIFEST_NAME
        return Path(self.path).expanduser()

    @property
    def root(self) -> Path:
        path = Path(self.path).expanduser()
        source = self.source
        if source == "manifest":
            return manifest_location(path)[1]
        if source == "videos":
            return self.cache_path
        return path.parent if path.is_file() else path

    def _video_root(self) -> Path:
        """Folder handed to preprocess: ``path`` itself, or a staging folder linking a single video file and its
        sidecar files (``<stem>.*``, e.g. the synthetic twin's ``<stem>.landmarks.npy``)."""
        path = Path(self.path).expanduser().resolve()
        if path.is_dir():
            return path
        staging = self.cache_path / "input"
        staging.mkdir(parents=True, exist_ok=True)
        for source in [path, *sorted(path.parent.glob(f"{path.stem}.*"))]:
            link = staging / source.name
            if link.exists() or not source.is_file():
                continue
            try:
                os.symlink(source, link)
            except OSError:  # file systems without symlinks
                shutil.copyfile(source, link)
        return staging

    def preprocess_videos(self) -> Path:
        """Crop the videos into :attr:`cache_path` (resumable, keyed on each video's content); returns the
        manifest path."""
        from lightning.pytorch.utilities import rank_zero_info

        from lightning_dfd.data.preprocess import preprocess

        rank_zero_info(f"[lightning-dfd] face crops of {self.path} cached in {self.cache_path} (set "
                       f"data.init_args.cache_dir to choose the folder)")
        return preprocess("folder", self._video_root(), self.cache_path, frames=self.frames,
                          backend=self.landmark_backend, progress=False)

    def prepare_data(self) -> None:
        if self.source == "videos":
            self.preprocess_videos()
        else:
            self.read_rows()

    def read_rows(self) -> pd.DataFrame:
        source = self.source
        if source == "manifest":
            return read_manifest(self.manifest_path)
        if source == "videos":
            manifest = self.manifest_path
            if not manifest.is_file():
                manifest = self.preprocess_videos()
            return read_manifest(manifest)
        path = Path(self.path).expanduser()
        images = [path] if path.is_file() else _media(path, IMAGE_SUFFIXES)
        return image_rows(self.root, images)

    def split_rows(self, rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """Everything is predicted (and tested, for the labelled rows' metrics); nothing is trained on."""
        empty = rows.iloc[0:0]
        return {"train": empty, "val": empty, "test": rows, "predict": rows}
