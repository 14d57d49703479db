"""Lightning training step of BinaryClassifier against a plain PyTorch loop: same model, batch and optimizer.

Both loops run the same number of steps on the same (fixed) batch; the first steps are warm-up and are not
timed. Trials alternate between the two loops; the overhead of Lightning in percent (goal <= 5%) is computed from
the fastest trial of each (the least disturbed by other processes, as `timeit` does), the medians are shown too.

    python benchmarks/step_overhead.py [--backbone resnet18] [--size 128] [--batch 16] [--steps 30] [--trials 3]
"""

from __future__ import annotations

import statistics
import time

import torch
from jsonargparse import auto_cli
from lightning.pytorch import Callback, Trainer
from torch.utils.data import DataLoader, Dataset

from lightning_dfd.methods.binary import BinaryClassifier


class RepeatedBatch(Dataset):
    def __init__(self, batch: dict, steps: int) -> None:
        self.batch, self.steps = batch, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict:
        return self.batch


class StepTimer(Callback):
    """Wall time from the start of batch `warmup` to the end of the last batch (all of Lightning's work included)."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.end = time.perf_counter()


def make_model(backbone: str) -> BinaryClassifier:
    torch.manual_seed(0)
    return BinaryClassifier(backbone=backbone, optimizer=lambda p: torch.optim.AdamW(p, lr=1e-4))


def lightning_step_time(backbone: str, batch: dict, steps: int, warmup: int) -> float:
    model = make_model(backbone)
    timer = StepTimer(warmup)
    trainer = Trainer(accelerator="auto", devices=1, max_steps=steps, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                      limit_val_batches=0, callbacks=[timer])
    trainer.fit(model, DataLoader(RepeatedBatch(batch, steps), batch_size=None))
    return (timer.end - timer.start) / (steps - warmup)


def plain_step_time(backbone: str, batch: dict, steps: int, warmup: int) -> float:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = make_model(backbone).to(device)
    model.train()
    optimizer = model.configure_optimizers()
    loader = DataLoader(RepeatedBatch(batch, steps), batch_size=None)
    start = None
    for i, b in enumerate(loader):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        b = {k: v.to(device) if torch.is_tensor(v) else v for k, v in b.items()}
        loss = model.compute_loss(model(b["image"]), b)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / (steps - warmup)


def main(backbone: str = "resnet18", size: int = 128, batch: int = 16, steps: int = 25, warmup: int = 5,
         trials: int = 5) -> float:
    """Args:
        backbone: timm model name.
        size: image side.
        batch: batch size.
        steps: steps per trial (warm-up included).
        warmup: untimed first steps.
        trials: alternating trials of each loop.
    """
    g = torch.Generator().manual_seed(0)
    data = {"image": torch.randn(batch, 3, size, size, generator=g),
            "label": torch.randint(0, 2, (batch,), generator=g),
            "video_id": [f"v{i}" for i in range(batch)]}
    plain, light = [], []
    for _ in range(trials):
        plain.append(plain_step_time(backbone, data, steps, warmup))
        light.append(lightning_step_time(backbone, data, steps, warmup))
    p, q = min(plain), min(light)
    overhead = 100 * (q - p) / p
    median_overhead = 100 * (statistics.median(light) - statistics.median(plain)) / statistics.median(plain)
    print(f"step_overhead: {backbone} {size}x{size} batch {batch}, {steps - warmup} timed steps x {trials} trials, "
          f"torch threads {torch.get_num_threads()}")
    print(f"  plain PyTorch loop : {1000 * p:8.2f} ms/step  (trials: {', '.join(f'{1000 * t:.1f}' for t in plain)})")
    print(f"  Lightning step     : {1000 * q:8.2f} ms/step  (trials: {', '.join(f'{1000 * t:.1f}' for t in light)})")
    print(f"  Lightning overhead : {overhead:+.2f}% (fastest trials; medians: {median_overhead:+.2f}%)  goal <= 5%")
    return overhead


if __name__ == "__main__":
    auto_cli(main)
