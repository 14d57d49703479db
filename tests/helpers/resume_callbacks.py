"""Callbacks for the resume tests: record per-step training losses to a file, stop a run as a scheduler would."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback


class LossRecorder(Callback):
    """Append ``{"step", "loss"}`` per training batch to a JSON-lines file (it survives an interrupted run).

    Args:
        path: the file.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": trainer.global_step, "loss": float(loss.detach())}) + "\n")


class SigtermAtStep(Callback):
    """Send this process SIGTERM after training step ``step``, as a cluster scheduler does before it kills a job
    (Lightning then stops after the current batch; ``save_on_exception`` writes the checkpoint).

    Args:
        step: global step after which the signal is sent.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class DrawInValidation(Callback):
    """Draw from the global torch generator in every validation batch (as MC dropout or random test-time
    augmentation would), so that a sanity check that is not neutral shifts the training stream."""

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        torch.rand(16)


class WorseningScore(Callback):
    """Log ``worsening = -epoch`` after each validation: with ``monitor=worsening, mode=max`` only epoch 0 is ever the
    best, so a ``last.ckpt`` written only beside a new best would stay at epoch 0."""

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        pl_module.log("worsening", -float(trainer.current_epoch))
