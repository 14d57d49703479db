"""Lightning overhead of a LAA-Net SAM training step: the same model, batches and optimiser trained by
``Trainer.fit`` (manual optimisation in ``LAANetDetector.training_step``) and by a plain PyTorch loop.

Both read the same pre-collated batches through the same DataLoader; per-step wall time is taken between
consecutive batch starts (Lightning: a callback; plain: the loop), warm-up steps dropped, median kept; the two are
run alternately ``repeats`` times and the best median of each is compared. Goal: overhead <= 5 %.

    python benchmarks/laanet_step.py                       # CPU, small backbone (default)
    python benchmarks/laanet_step.py --backbone efficientnet_b4 --image_size 384 --batch_size 16 --device cuda
"""

from __future__ import annotations

import itertools
import json
import statistics
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from step_overhead import RepeatedBatch  # same folder: one batch repeated `steps` times
from torch.utils.data import DataLoader, Dataset

from lightning_dfd.methods.laanet import LAANetDetector
from lightning_dfd.optim.sam import batchnorm_stats_frozen


class BatchData(LightningDataModule):
    def __init__(self, dataset: Dataset) -> None:
        super().__init__()
        self.dataset = dataset

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.dataset, batch_size=None, shuffle=False)


class StepTimer(Callback):
    def __init__(self) -> None:
        self.starts: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
        self.starts.append(time.perf_counter())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.on_train_batch_start(trainer, pl_module, None, -1)


def make_batch(batch_size: int, image_size: int, stride: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = image_size // stride
    labels = torch.arange(batch_size) % 2
    heatmap = torch.zeros(batch_size, 1, out, out)
    consistency = torch.ones(batch_size, 1, out, out)
    for i in range(1, batch_size, 2):  # a vulnerable point per fake, a Gaussian around it, C from a ring
        y, x = torch.randint(2, out - 2, (2,), generator=g).tolist()
        yy, xx = torch.meshgrid(torch.arange(out), torch.arange(out), indexing="ij")
        heatmap[i, 0] = torch.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0)
        consistency[i, 0] = 1 - (heatmap[i, 0] - 1).abs()
    return {"image": torch.randn(batch_size, 3, image_size, image_size, generator=g), "label": labels,
            "heatmap": heatmap, "consistency": consistency}


def median_step(starts: list[float], warmup: int) -> float:
    steps = [b - a for a, b in itertools.pairwise(starts)][warmup:]
    return statistics.median(steps)


def time_lightning(detector: LAANetDetector, dataset: Dataset, device: str, warmup: int) -> float:
    timer = StepTimer()
    trainer = Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_epochs=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      limit_val_batches=0, callbacks=[timer])
    trainer.fit(detector, datamodule=BatchData(dataset))
    return median_step(timer.starts, warmup)


def time_plain(detector: LAANetDetector, dataset: Dataset, device: str, warmup: int) -> float:
    """The same SAM step as ``LAANetDetector.training_step``, written in plain PyTorch."""
    detector = detector.to(device).train()
    sam = detector.configure_optimizers()
    sam = sam["optimizer"] if isinstance(sam, dict) else sam
    starts = []
    for batch in DataLoader(dataset, batch_size=None, shuffle=False):
        if device == "cuda":
            torch.cuda.synchronize()
        starts.append(time.perf_counter())
        batch = {k: v.to(device) for k, v in batch.items()}
        sam.zero_grad()
        detector.compute_loss(detector(batch["image"]), batch)["loss"].backward()
        sam.first_step(zero_grad=True)
        with batchnorm_stats_frozen(detector):
            detector.compute_loss(detector(batch["image"]), batch)["loss"].backward()
        sam.step()
        sam.zero_grad()
    if device == "cuda":
        torch.cuda.synchronize()
    starts.append(time.perf_counter())
    return median_step(starts, warmup)


def main(backbone: str = "efficientnet_b0", image_size: int = 128, batch_size: int = 8, steps: int = 20,
         warmup: int = 5, repeats: int = 3, device: str = "cpu", threads: int | None = None,
         out: str | None = None) -> dict:
    """Run the comparison and print (and optionally write as JSON) the per-step medians and the overhead.

    Args:
        backbone: timm backbone of LAA-Net.
        image_size: input side.
        batch_size: samples per step.
        steps: steps per timed run.
        warmup: first steps of each run left out.
        repeats: alternating runs of each variant (best median kept).
        device: ``cpu`` or ``cuda``.
        threads: torch CPU threads (default: torch's choice).
        out: JSON file for the results.
    """
    if threads:
        torch.set_num_threads(threads)
    dataset = RepeatedBatch(make_batch(batch_size, image_size, stride=4), steps)
    torch.manual_seed(0)
    template = LAANetDetector(backbone=backbone)
    lightning_times, plain_times = [], []
    for _ in range(repeats):
        for kind, timings in (("plain", plain_times), ("lightning", lightning_times)):
            detector = LAANetDetector(backbone=backbone)
            detector.load_state_dict(template.state_dict())
            run = time_plain if kind == "plain" else time_lightning
            timings.append(run(detector, dataset, device, warmup))
    plain, lightning = min(plain_times), min(lightning_times)
    result = {"backbone": backbone, "image_size": image_size, "batch_size": batch_size, "device": device,
              "threads": torch.get_num_threads(), "plain_step_s": plain, "lightning_step_s": lightning,
              "overhead_percent": 100.0 * (lightning - plain) / plain,
              "plain_runs_s": plain_times, "lightning_runs_s": lightning_times}
    print(f"LAA-Net SAM step, {backbone} {image_size}px batch {batch_size} on {device} "
          f"({result['threads']} threads): plain {plain * 1e3:.1f} ms, Lightning {lightning * 1e3:.1f} ms, "
          f"overhead {result['overhead_percent']:+.1f} % (goal <= 5 %)")
    if out:
        from lightning_dfd.io import write_text_atomic

        write_text_atomic(Path(out), json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    from jsonargparse import auto_cli

    auto_cli(main, as_positional=False)
