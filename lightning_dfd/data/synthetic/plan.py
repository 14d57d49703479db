"""A twin as a plan: render jobs (each writes a few files), small text files, empty placeholders.

Every dataset layout (``ffpp.py``, ``celebdf.py`` ...) only builds a ``TwinPlan``; ``run_plan`` executes
it: text files first, then placeholders, then the jobs (resumable: a job whose files all exist is skipped,
and every file is written atomically, so an interrupted run leaves only complete files).
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from lightning_dfd.data.synthetic.clips import ClipRenderer, VideoSpec
from lightning_dfd.data.synthetic.encode import landmark_sidecar_path, write_landmarks, write_video
from lightning_dfd.io import write_bytes_atomic, write_text_atomic


@dataclass(frozen=True)
class RenderSettings:
    """What every job of one twin shares."""

    seed: int
    size: int
    frames: int
    fps: int = 25


class Job(Protocol):
    """One unit of rendering work: the files it writes (relative paths) and how to write them."""

    group: str

    def outputs(self) -> list[str]: ...

    def run(self, root: Path, renderer: ClipRenderer) -> None: ...


@dataclass(frozen=True)
class VideoJob:
    """Render ``spec`` once and encode it at every (relative path, crf) in ``outputs_crf``."""

    spec: VideoSpec
    outputs_crf: tuple[tuple[str, int], ...]

    @property
    def group(self) -> str:
        return self.spec.key

    def outputs(self) -> list[str]:
        paths = []
        for path, _ in self.outputs_crf:
            paths += [path, landmark_sidecar_path(path).as_posix()]
        return paths

    def run(self, root: Path, renderer: ClipRenderer) -> None:
        clip = renderer.render(self.spec)
        for path, crf in self.outputs_crf:
            write_video(root / path, clip.frames, crf, renderer.fps)
            write_landmarks(root / path, clip.landmarks)


@dataclass
class TwinPlan:
    """Everything one twin consists of, as relative paths under its root."""

    jobs: list[Job] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    placeholders: list[str] = field(default_factory=list)


def _done(root: Path, job: Job) -> bool:
    return all((root / path).is_file() for path in job.outputs())


_WORKER: dict[str, object] = {}


def _init_worker(settings: RenderSettings) -> None:
    _WORKER["renderer"] = ClipRenderer(settings.seed, settings.size, settings.frames, settings.fps)


def _run_group(root: Path, jobs: list[Job]) -> int:
    renderer = _WORKER["renderer"]
    for job in jobs:
        job.run(root, renderer)
    return len(jobs)


def run_plan(root: Path, plan: TwinPlan, settings: RenderSettings, overwrite: bool = False,
             workers: int = 1, desc: str = "synth") -> None:
    """Write ``plan`` under ``root``.

    Args:
        overwrite: re-render jobs whose files already exist (otherwise they are skipped).
        workers: processes rendering in parallel (jobs sharing a target clip stay in one process).
    """
    root.mkdir(parents=True, exist_ok=True)
    for path, text in plan.texts.items():
        write_text_atomic(root / path, text)
    for path in plan.placeholders:
        target = root / path
        if overwrite or not target.exists():
            write_bytes_atomic(target, b"")
    todo = [job for job in plan.jobs if overwrite or not _done(root, job)]
    groups: dict[str, list[Job]] = {}
    for job in todo:
        groups.setdefault(job.group, []).append(job)
    with tqdm(total=len(todo), desc=desc, unit="job", dynamic_ncols=True) as progress:
        if workers <= 1:
            renderer = ClipRenderer(settings.seed, settings.size, settings.frames, settings.fps)
            for jobs in groups.values():
                for job in jobs:
                    job.run(root, renderer)
                    progress.update(1)
        else:
            # spawn, not fork: the parent may hold OpenCV / BLAS threads
            with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=_init_worker, initargs=(settings,)) as pool:
                futures = [pool.submit(_run_group, root, jobs) for jobs in groups.values()]
                for future in futures:
                    progress.update(future.result())
