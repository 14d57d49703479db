"""Reduce-on-plateau with a limited number of reductions, per parameter group.

Two-branch recurrent network (seed 004, Sec. 4): "The learning rate is decreased three times by a factor of 10.
We decrease it every time the validation loss does not decrease after 50 stratified epochs." torch's
``ReduceLROnPlateau`` has one ``min_lr`` per group given up front, which a config cannot know when the method
sets per-group rates (``mu / 2^L``); here each group's floor is its own starting rate times ``factor **
max_reductions``, so every group is divided by 10 at most three times. In YAML::

    lr_scheduler:
      class_path: lightning_dfd.optim.plateau.LimitedReduceLROnPlateau
      init_args: {factor: 0.1, patience: 50, max_reductions: 3}

The method base returns it with ``monitor: val/loss`` (``DetectorModule.scheduler_monitor``).
"""

from __future__ import annotations

from typing import Literal

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau


class LimitedReduceLROnPlateau(ReduceLROnPlateau):
    """``ReduceLROnPlateau`` whose groups stop at ``initial lr * factor ** max_reductions``.

    Args:
        optimizer: the optimizer (its groups' current rates are the starting rates).
        mode: ``min`` (a loss) or ``max``.
        factor: multiplier at each reduction (0.1: LR / 10).
        patience: epochs without improvement before a reduction (Sec. 4: 50).
        max_reductions: reductions per group at most (Sec. 4: three).
        threshold: relative improvement that counts as one.
    """

    def __init__(self, optimizer: Optimizer, mode: Literal["min", "max"] = "min", factor: float = 0.1,
                 patience: int = 50, max_reductions: int = 3, threshold: float = 1e-4) -> None:
        if max_reductions < 0:
            raise ValueError(f"max_reductions must be >= 0, got {max_reductions}")
        floors = [float(group["lr"]) * factor**max_reductions for group in optimizer.param_groups]
        # eps 0: a reduction onto the floor is applied even when it changes the rate very little
        super().__init__(optimizer, mode=mode, factor=factor, patience=patience, threshold=threshold,
                         min_lr=floors, eps=0.0)
        self.max_reductions = int(max_reductions)
