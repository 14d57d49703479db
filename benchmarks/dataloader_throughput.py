"""Samples per second of the training DataLoader on a synthetic FF++ twin (synth -> preprocess -> FFPPDataModule).

    python benchmarks/dataloader_throughput.py                       # 1 and 2 workers, plain and SBI pipelines
    python benchmarks/dataloader_throughput.py --workers '[1, 2, 4]' --image_size 384 --pseudo_fakes '[sbi]'

The twin is written once under ``--work_dir`` (default: a temp folder, removed afterwards). Each measurement
iterates one warm-up batch (worker start-up excluded) and then ``--batches`` batches; the figure is samples
delivered (with SBI: reals + their pseudo-fakes) divided by wall time.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from lightning_dfd.data.preprocess import preprocess
from lightning_dfd.data.synthetic.cli import synth
from lightning_dfd.datamodules import FFPPDataModule

TRAIN_TRANSFORMS = [
    {"class_path": "HorizontalFlip", "init_args": {"p": 0.5}},
    {"class_path": "RandomBrightnessContrast", "init_args": {"p": 0.5}},
    {"class_path": "ImageCompression", "init_args": {"quality_range": [60, 100], "p": 0.3}},
]


def measure(datamodule: FFPPDataModule, batches: int) -> tuple[float, int]:
    """(samples per second, samples) over ``batches`` batches after one warm-up batch; cycles the loader."""
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    samples = 0
    started = time.perf_counter()
    for _ in range(batches):
        try:
            batch = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            batch = next(iterator)
        samples += len(batch["label"])
    return samples / (time.perf_counter() - started), samples


def dataloader_throughput(
    workers: list[int] = [1, 2],  # noqa: B006 (jsonargparse copies defaults)
    pseudo_fakes: list[str] = ["none", "sbi"],  # noqa: B006
    batch_size: int = 32,
    batches: int = 20,
    image_size: int = 224,
    crop_size: int = 256,
    videos: int = 6,
    frames: int = 16,
    work_dir: str | None = None,
) -> list[dict]:
    """Measure and print training-loader throughput.

    Args:
        workers: DataLoader worker counts to measure.
        pseudo_fakes: pipelines: ``none`` (decode + resize + augment + normalise), ``sbi`` / ``bi`` (plus blending).
        batch_size: samples per batch.
        batches: timed batches per measurement.
        image_size: model input side.
        crop_size: side of the stored crops (preprocess ``size``) and of the twin's frames.
        videos: twin videos (even, >= 6).
        frames: frames per video.
        work_dir: keep the twin here (default: a temporary folder, deleted at the end).
    """
    owned = work_dir is None
    root = Path(work_dir or tempfile.mkdtemp(prefix="dfd_loader_bench_"))
    try:
        raw = synth("ffpp", root / "raw", seed=0, identities=4, videos=videos, frames=frames, size=crop_size,
                    compressions=["c23"])
        cache = preprocess("ffpp", raw, root / "cache", frames=frames, backend="sidecar", size=crop_size,
                           image_format="jpg", progress=False).parent
        results = []
        for kind in pseudo_fakes:
            for count in workers:
                dm = FFPPDataModule(str(cache), batch_size=batch_size, num_workers=count, image_size=image_size,
                                    frames_per_video=None, train_transforms=TRAIN_TRANSFORMS,
                                    protocol="real_only" if kind != "none" else "all", pseudo_fake=kind)
                dm.setup("fit")
                rate, samples = measure(dm, batches)
                results.append({"pseudo_fake": kind, "workers": count, "samples_per_s": round(rate, 1),
                                "samples": samples})
                print(f"pseudo_fake={kind:<5} workers={count}  {rate:8.1f} samples/s  ({samples} samples, "
                      f"batch {batch_size}, {crop_size}px crops -> {image_size}px)", flush=True)
        return results
    finally:
        if owned:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(dataloader_throughput, as_positional=False)
