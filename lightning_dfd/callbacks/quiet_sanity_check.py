"""Keeps the sanity check quiet about metrics it cannot compute from its two batches."""

from __future__ import annotations

import warnings
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

#: the metrics' NaN warnings (``lightning_dfd.metrics``: "... undefined ...; returning NaN.").
UNDEFINED_METRIC_WARNING = r"(?s).*undefined.*returning NaN"


class QuietSanityCheck(Callback):
    """Silence the metrics' "undefined ...; returning NaN" warnings while Lightning's sanity check runs.

    The sanity check runs a couple of validation batches before training to catch crashes; its metrics are
    discarded, and on so few samples (often one class only) AUC, EER and TPR@FPR are undefined, so their NaN
    warnings tell the user nothing. The same warnings in a real validation epoch still show.
    """

    def __init__(self) -> None:
        self._quiet: warnings.catch_warnings | None = None

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._quiet = warnings.catch_warnings()
        self._quiet.__enter__()
        warnings.filterwarnings("ignore", message=UNDEFINED_METRIC_WARNING, category=UserWarning)

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore()

    def _restore(self, *_: Any) -> None:
        if self._quiet is not None:
            self._quiet.__exit__(None, None, None)
            self._quiet = None
