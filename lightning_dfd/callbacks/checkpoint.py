"""Checkpointing: best model by a monitored metric plus a ``last.ckpt`` refreshed after every epoch."""

from __future__ import annotations

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info


class BestAndLastCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` always holds the latest epoch.

    Lightning 2.6 refreshes ``last.ckpt`` only when a top-k checkpoint was written in the same step, so a run whose
    monitored metric stopped improving would resume (``--ckpt_path last``) from a stale epoch. Here ``last.ckpt``
    is written after every validation (or training epoch end when there is no validation), so a stopped run
    resumes exactly where it stopped: same epoch, step and optimizer state.

    ``fast_dev_run`` writes nothing: Lightning 2.6 disables checkpointing there but its ``on_train_end`` still wrote
    ``last.ckpt`` (700 MB per smoke run of a three-stream ResNet-34, 22 GB of disk per test session).

    With ``save_on_exception`` (a SIGTERM from a cluster, Ctrl-C) only ``last.ckpt`` is written: Lightning would
    also write a file under the top-k name (``best-epochNNN.ckpt``), which is not a best model and pushes the real
    best of that epoch to ``best-epochNNN-v1.ckpt``.
    """

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not self.save_last:
            super().on_exception(trainer, pl_module, exception)
            return
        if self._should_save_on_exception(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            rank_zero_info(f"{type(exception).__name__}: saved {self.last_model_path} (resume: --ckpt_path last)")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.fast_dev_run:
            return
        super().on_train_end(trainer, pl_module)

    def _refresh_last(self, trainer: Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._refresh_last(trainer)
