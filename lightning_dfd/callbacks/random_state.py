"""Keeps the random number generators in the checkpoint so a resumed run draws what a straight run would."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class RandomStateCheckpoint(Callback):
    """Save the torch / CUDA / NumPy / Python RNG states with every checkpoint and restore them on resume.

    Lightning restores weights, optimizer, schedulers and loop counters but not the generators, so dropout masks
    and data-loader seeds after a resume would differ from those of an uninterrupted run. The states are applied
    when the checkpoint is loaded, and the sanity check is made neutral (the generators are put back as they were
    before it), so the first training batch after a resume draws exactly what the stopped run would have drawn.
    Stored as tensors and ints so checkpoints load with ``weights_only=True``.
    """

    def __init__(self) -> None:
        self._before_sanity_check: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return capture_random_state()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        restore_random_state(state_dict)

    def on_sanity_check_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._before_sanity_check = capture_random_state()

    def on_sanity_check_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._before_sanity_check is not None:
            restore_random_state(self._before_sanity_check)
            self._before_sanity_check = None


def capture_random_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": int(version), "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                         numpy_state["has_gauss"], numpy_state["gauss"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss"]))
