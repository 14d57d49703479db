"""``python -m lightning_dfd synth``: write a synthetic twin of a dataset in its exact on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from lightning_dfd.data.synthetic.casia_surf import plan_casia_surf
from lightning_dfd.data.synthetic.celebdf import plan_celebdf
from lightning_dfd.data.synthetic.deeperforensics import DEFAULT_TWIN_VARIANTS, plan_deeperforensics
from lightning_dfd.data.synthetic.dfd import plan_dfd
from lightning_dfd.data.synthetic.dfdc import plan_dfdc, plan_dfdc_preview
from lightning_dfd.data.synthetic.encode import crf_of
from lightning_dfd.data.synthetic.ffpp import FFPP_METHODS, plan_ffpp
from lightning_dfd.data.synthetic.plan import RenderSettings, TwinPlan, run_plan
from lightning_dfd.data.synthetic.uadfv import plan_uadfv
from lightning_dfd.data.synthetic.wilddeepfake import plan_wilddeepfake
from lightning_dfd.io import write_text_atomic

Dataset = Literal["ffpp", "celebdf", "celebdf_v1", "dfdc", "dfdc_preview", "casia_surf", "uadfv", "wilddeepfake",
                  "dfd", "deeperforensics"]
PARAMS_FILE = "twin.json"
README_FILE = "README.twin.txt"

README = """This folder is a SYNTHETIC TWIN of {name}, written by `python -m lightning_dfd synth`.

It copies the dataset's on-disk layout (folders, file names, split and label files with their own label
conventions) with procedurally drawn faces and manipulations made the way real pipelines make them
(landmark-warped face swaps with colour transfer and feathered masks, expression and mouth re-rendering,
print attacks). It exists to check the pipeline end to end: loaders, preprocessing, training, metrics.
It is NOT forensic data: numbers measured on it say nothing about real deepfakes or spoofs.

Each video X.mp4 has X.landmarks.npy beside it: float32 (T, 68, 2), iBUG 68-point (x, y) pixel
coordinates of the face in every frame (for fakes: where the manipulated face was placed).

Parameters: {params}
"""

_NAMES = {"ffpp": "FaceForensics++", "celebdf": "Celeb-DF (v2)", "celebdf_v1": "Celeb-DF (v1)",
          "dfdc": "the DFDC (full) dataset", "dfdc_preview": "the DFDC preview dataset",
          "casia_surf": "CASIA-SURF (CVPR'19 challenge)", "uadfv": "UADFV", "wilddeepfake": "WildDeepfake",
          "dfd": "Google's DeepFakeDetection (DFD)", "deeperforensics": "DeeperForensics-1.0"}


def synth(
    dataset: Dataset,
    out: Path,
    seed: int = 0,
    identities: int = 8,
    videos: int = 8,
    frames: int = 12,
    size: int = 128,
    full_splits: bool = False,
    compressions: list[str] = ["c23", "c40"],  # noqa: B006 (jsonargparse copies defaults)
    methods: list[str] = list(FFPP_METHODS),  # noqa: B006
    fakes_per_video: int = 1,
    youtube: int | None = None,
    parts: int = 2,
    test_fraction: float = 0.25,
    subject_split: list[float] = [0.3, 0.1, 0.6],  # noqa: B006
    fps: int = 25,
    workers: int = 1,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic twin of ``dataset`` under ``out`` (deterministic from ``seed``); returns ``out``.

    Args:
        dataset: which layout to copy.
        out: root folder of the twin (created).
        seed: everything (faces, motion, manipulations, splits, names) follows from it.
        identities: number of people (FF++/Celeb-DF/DFDC train actors; DFDC-preview and CASIA-SURF subjects).
        videos: real videos: FF++ ids (even, >= 6), Celeb-real clips, DFDC reals (train + test),
            DFDC-preview clips, UADFV reals, DFD actor scenes, DeeperForensics-1.0 targets (>= 3); WildDeepfake:
            face sequences (>= 8, spread over real/fake x train/test). Unused by CASIA-SURF.
        frames: frames per video (images per sample for CASIA-SURF).
        size: frame side in pixels (even; frames are square).
        full_splits: FF++ only: list all 1000 ids at the official 360/70/70 pairs, with empty placeholder
            videos for the ids not rendered.
        compressions: FF++ qualities among raw (crf 0), c23 (crf 23), c40 (crf 40); the other video
            datasets have one quality and use the first entry.
        methods: FF++ manipulations to write (Deepfakes, Face2Face, FaceSwap, NeuralTextures, FaceShifter).
        fakes_per_video: Celeb-DF / DFDC: fakes made from each real video.
        youtube: Celeb-DF: number of YouTube-real videos (default: a quarter of ``videos``, at least 1).
        parts: DFDC: number of dfdc_train_part_K folders.
        test_fraction: Celeb-DF: fraction of real videos in List_of_testing_videos.txt; DFDC: fraction of
            real videos in test/; DFDC preview: fraction of subjects in the test set.
        subject_split: CASIA-SURF: train/val/test subject fractions (the challenge's 300/100/600 ratio).
        fps: frame rate of the videos.
        workers: parallel rendering processes.
        overwrite: re-render existing files, and allow a folder made with other parameters.
    """
    out = Path(out)
    if size < 32 or size % 2:
        raise ValueError(f"--size must be even and >= 32 (H.264 yuv420p, readable faces), got {size}")
    if frames < 1:
        raise ValueError(f"--frames must be >= 1, got {frames}")
    if identities < 2:
        raise ValueError(f"--identities must be >= 2 (swaps need a donor), got {identities}")
    if not compressions:
        raise ValueError("--compressions needs at least one of raw, c23, c40")
    for quality in compressions:
        crf_of(quality)
    crf = crf_of(compressions[0])
    if full_splits and dataset != "ffpp":
        raise ValueError("--full_splits applies to ffpp only")

    params = {"dataset": dataset, "seed": seed, "identities": identities, "videos": videos, "frames": frames,
              "size": size, "full_splits": full_splits, "compressions": list(compressions),
              "methods": list(methods), "fakes_per_video": fakes_per_video, "youtube": youtube,
              "parts": parts, "test_fraction": test_fraction, "subject_split": list(subject_split),
              "fps": fps}
    params_path = out / PARAMS_FILE
    if params_path.exists() and not overwrite:
        previous = json.loads(params_path.read_text())
        if previous != params:
            changed = sorted(k for k in set(previous) | set(params) if previous.get(k) != params.get(k))
            raise ValueError(f"{out} holds a twin made with other parameters ({', '.join(changed)} differ); "
                             "choose a new --out, or pass --overwrite to re-render it")

    plan: TwinPlan
    if dataset == "ffpp":
        plan = plan_ffpp(seed, videos, identities, list(compressions), list(methods), full_splits)
    elif dataset in ("celebdf", "celebdf_v1"):
        n_youtube = youtube if youtube is not None else max(1, videos // 4)
        plan = plan_celebdf(dataset, seed, videos, identities, n_youtube, fakes_per_video, test_fraction, crf)
    elif dataset == "dfdc":
        plan = plan_dfdc(seed, videos, identities, fakes_per_video, parts, test_fraction, crf)
    elif dataset == "dfdc_preview":
        plan = plan_dfdc_preview(seed, videos, identities, test_fraction, crf)
    elif dataset == "casia_surf":
        plan = plan_casia_surf(seed, identities, frames, list(subject_split))
    elif dataset == "uadfv":
        plan = plan_uadfv(seed, videos, crf)
    elif dataset == "dfd":
        plan = plan_dfd(seed, videos, identities, list(compressions))
    elif dataset == "deeperforensics":
        plan = plan_deeperforensics(seed, videos, identities, list(DEFAULT_TWIN_VARIANTS))
    elif dataset == "wilddeepfake":
        plan = plan_wilddeepfake(seed, videos, identities)
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {list(_NAMES)}")
    # Parameters first: an interrupted run can only be resumed with the same ones.
    write_text_atomic(params_path, json.dumps(params, indent=1) + "\n")
    write_text_atomic(out / README_FILE, README.format(name=_NAMES[dataset], params=json.dumps(params)))
    settings = RenderSettings(seed=seed, size=size, frames=frames, fps=fps)
    run_plan(out, plan, settings, overwrite=overwrite, workers=workers, desc=f"synth {dataset}")
    return out


def main() -> None:
    """Stand-alone entry (the package CLI dispatches ``synth`` to the same function)."""
    from jsonargparse import auto_cli

    auto_cli(synth, as_positional=False)


if __name__ == "__main__":
    main()
