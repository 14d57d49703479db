"""Preprocessing speed (videos/s) and dlib landmark accuracy on a synthetic FF++ twin.

    python benchmarks/preprocess_speed.py                                  # sidecar + dlib, 1 and 2 workers, png
    python benchmarks/preprocess_speed.py --backends '[dlib]' --workers '[1, 4]' --image_format jpg

Speed: wall time of the per-video loop (decode, landmarks, crop, encode, part file) as reported in
``summary.json``, worker start-up included. Accuracy: dlib's 68 points against the twin's rendered
ground truth (sidecar), NME = mean point error / inter-ocular (eye-centre) distance, on every decoded frame.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from lightning_dfd.data.faces import build_backend, interocular_distance, normalised_mean_error
from lightning_dfd.data.layouts import index_dataset
from lightning_dfd.data.preprocess import preprocess
from lightning_dfd.data.synthetic.cli import synth
from lightning_dfd.data.video import read_frames


def dlib_nme(root: Path) -> dict:
    """Detection rate and NME (mean, median; inner points 17-67 and jaw 0-16) of dlib on every twin frame."""
    dlib_backend, sidecar = build_backend("dlib"), build_backend("sidecar")
    nme, inner, jaw, frames_seen = [], [], [], 0
    for record in index_dataset("ffpp", root):
        frames, indices = read_frames(root / record.source)
        for frame, index in zip(frames, indices):
            frames_seen += 1
            face = dlib_backend.largest_face(frame, int(index), root / record.source)
            if face is None:
                continue
            truth = sidecar.detect(frame, int(index), root / record.source)[0].landmarks
            nme.append(normalised_mean_error(face.landmarks, truth))
            point_error = np.linalg.norm(face.landmarks - truth, axis=1) / interocular_distance(truth)
            inner.append(float(point_error[17:].mean()))
            jaw.append(float(point_error[:17].mean()))
    return {"frames": frames_seen, "detected": len(nme) / frames_seen, "nme_mean": float(np.mean(nme)),
            "nme_median": float(np.median(nme)), "nme_inner_17_67": float(np.mean(inner)),
            "nme_jaw_0_16": float(np.mean(jaw))}


def main(videos: int = 8, frames: int = 32, size: int = 128, crop_size: int = 256,
         backends: list[str] = ["sidecar", "dlib"],  # noqa: B006 (jsonargparse copies defaults)
         workers: list[int] = [1, 2],  # noqa: B006
         image_format: str = "png", work_dir: str | None = None) -> None:
    """Args:
        videos: real FF++ twin videos (each gets 5 fakes: 6 x videos in all).
        frames: frames per twin video (all are preprocessed).
        size: twin frame side.
        crop_size: crop side.
        backends: landmark backends to time.
        workers: worker counts to time.
        image_format: png or jpg crops.
        work_dir: where to write (default: a temp folder, removed afterwards).
    """
    base = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    try:
        root = synth("ffpp", base / "twin", seed=0, identities=8, videos=videos, frames=frames, size=size,
                     compressions=["c23"])
        for backend in backends:
            for count in workers:
                out = base / f"out_{backend}_{count}"
                shutil.rmtree(out, ignore_errors=True)
                preprocess("ffpp", root, out, frames=frames, backend=backend, workers=count, size=crop_size,
                           image_format=image_format, progress=False)
                summary = json.loads((out / "summary.json").read_text())
                print(f"{backend:8s} workers={count}: {summary['videos']} videos, {summary['crops']} crops, "
                      f"{summary['videos_per_second_this_run']:.2f} videos/s")
        print("dlib vs twin ground truth:", json.dumps(dlib_nme(root), indent=1))
    finally:
        if not work_dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    from jsonargparse import CLI

    CLI(main)
