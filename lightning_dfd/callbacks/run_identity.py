"""Stores which logger runs a training run writes to, so a resumed run continues them instead of starting new ones."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import CSVLogger, WandbLogger


class RunIdentity(Callback):
    """Saves the CSV logger's version and the W&B run id with every checkpoint.

    On ``fit --ckpt_path last`` (or a path) the CLI reads them back from the checkpoint before the loggers are built
    (:func:`lightning_dfd.cli.resume_loggers`): the CSV logger reuses its ``version`` folder and ``WandbLogger`` gets
    ``id`` with ``resume="allow"``, so the curves of a stopped and resumed run stay one run. Plain types only, so
    checkpoints load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        identity: dict[str, Any] = {}
        for logger in self._trainer.loggers if self._trainer is not None else []:
            if isinstance(logger, CSVLogger) and "csv_version" not in identity:
                identity["csv_version"] = logger.version if isinstance(logger.version, int) else str(logger.version)
            elif isinstance(logger, WandbLogger) and "wandb_id" not in identity and logger.version is not None:
                identity["wandb_id"] = str(logger.version)
        return identity

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore here: the CLI has applied the identity to the loggers' arguments already."""
