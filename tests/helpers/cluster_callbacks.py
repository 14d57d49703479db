"""Callbacks for the cluster tests: hold a SLURM job at a known step until it is signalled; record rank state."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback


class PauseAtStep(Callback):
    """On a job's first run, after training step ``step``: write ``marker`` and wait (up to ``timeout`` s) until
    the SIGUSR1 handler has written ``hpc_ckpt_*.ckpt`` into ``default_root_dir``, so the signal lands between two
    steps. A requeued run (``SLURM_RESTART_COUNT`` > 0) does not pause.

    Args:
        step: global step after which to wait.
        marker: file written when the job is waiting (the test signals the job once it exists).
        timeout: seconds to wait at most.
    """

    def __init__(self, step: int, marker: str, timeout: float = 120.0) -> None:
        self.step, self.marker, self.timeout = step, Path(marker), timeout

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step != self.step or int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:
            return
        self.marker.write_text(f"{os.environ.get('SLURM_JOB_ID')} {trainer.global_step}\n")
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and not list(Path(trainer.default_root_dir).glob("hpc_ckpt_*.ckpt")):
            time.sleep(0.2)
        time.sleep(2.0)  # let the handler finish `scontrol requeue`


class SaveRankState(Callback):
    """After fit, each rank writes its model ``state_dict`` (parameters and buffers) to ``<out>/rank<R>.pt``, so a
    test can check that what must agree across ranks does.

    Args:
        out: folder to write to.
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def save(self, trainer, pl_module, name: str) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().clone() for k, v in pl_module.state_dict().items()}
        torch.save({"state": state, "global_step": trainer.global_step},
                   self.out / f"{name}rank{trainer.global_rank}.pt")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if batch_idx == 0 and not trainer.sanity_checking:
            self.save(trainer, pl_module, "val_")  # the state the rank validates with (after DDP's forward)

    def on_train_end(self, trainer, pl_module) -> None:
        self.save(trainer, pl_module, "")


class SaveTestScores(Callback):
    """After test, each rank writes the scores its metrics were computed on (frame and video level, gathered from
    all ranks) to ``<out>/rank<R>.pt``.

    Args:
        out: folder to write to.
    """

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_test_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        scores, metrics = pl_module._last_reports["test"]
        torch.save({"scores": {k: torch.as_tensor(v) for k, v in scores.items()}, "metrics": dict(metrics),
                    "world_size": trainer.world_size}, self.out / f"rank{trainer.global_rank}.pt")
