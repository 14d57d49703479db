"""Learning-rate schedules.

LAA-Net (seed 003, Sec. 4.1): "a learning rate scheduler that increases from 5e-5 to 2e-4 in the first quarter
of the training and then decays to zero in the remaining quarters", with both segments linear (as the official
``LinearDecayLR`` with ``booster=4``). With the optimizer's learning rate set to the peak (2e-4), that is

    factor(t) = s + (1 - s) t / t_r            for t <  t_r = ramp_fraction * T     (s = start_factor = 1/4)
    factor(t) = (T - t) / (T - t_r)            for t >= t_r, and 0 from T on

with t the number of scheduler steps taken (epochs with Lightning's ``interval: epoch``). In YAML::

    lr_scheduler:
      class_path: lightning_dfd.optim.RampLinearDecayLR
      init_args: {total_steps: 100, ramp_fraction: 0.25, start_factor: 0.25}

Cosine annealing over the run (seed 001, Sec. 5.1), :class:`CosineDecayLR`: ``factor(t) = f + (1 - f) (1 +
cos(pi min(t, T) / T)) / 2`` with ``f = final_factor`` (0 by default), the closed form of torch's
``CosineAnnealingLR(T_max=T, eta_min=f lr)`` for ``t <= T``, and ``T = total_steps`` linked from
``trainer.max_epochs`` like the ramp above.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler


def ramp_linear_decay_factor(step: int, total_steps: int, ramp_fraction: float = 0.25,
                             start_factor: float = 0.25) -> float:
    """Multiplier of the peak learning rate after ``step`` scheduler steps (see the module docstring)."""
    ramp_steps = ramp_fraction * total_steps
    if step < ramp_steps:
        return start_factor + (1.0 - start_factor) * step / ramp_steps
    if step >= total_steps:
        return 0.0
    return (total_steps - step) / (total_steps - ramp_steps)


class RampLinearDecayLR(LRScheduler):
    """Linear ramp from ``start_factor`` x lr to lr over ``ramp_fraction`` of the run, then linear decay to 0.

    Args:
        optimizer: the wrapped optimizer; its learning rate is the peak (2e-4 for LAA-Net).
        total_steps: length of the run in scheduler steps (``trainer.max_epochs`` with ``interval: epoch``).
        ramp_fraction: share of the run spent ramping up (a quarter in the paper).
        start_factor: first learning rate as a fraction of the peak (5e-5 / 2e-4 = 0.25 in the paper).
        last_epoch: index of the last step when resuming (-1 to start).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int = 100, ramp_fraction: float = 0.25,
                 start_factor: float = 0.25, last_epoch: int = -1) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0.0 < ramp_fraction < 1.0:
            raise ValueError(f"ramp_fraction must be in (0, 1), got {ramp_fraction}")
        if not 0.0 <= start_factor <= 1.0:
            raise ValueError(f"start_factor must be in [0, 1], got {start_factor}")
        self.total_steps = total_steps
        self.ramp_fraction = ramp_fraction
        self.start_factor = start_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        return ramp_linear_decay_factor(step, self.total_steps, self.ramp_fraction, self.start_factor)

    def get_lr(self) -> list[float]:
        return [base_lr * self.factor(self.last_epoch) for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


def cosine_decay_factor(step: int, total_steps: int, final_factor: float = 0.0) -> float:
    """Multiplier of the initial learning rate after ``step`` steps: half a cosine from 1 to ``final_factor``
    over ``total_steps`` (Loshchilov & Hutter's SGDR without restarts), ``final_factor`` from then on."""
    progress = min(max(step, 0), total_steps) / total_steps
    return final_factor + (1.0 - final_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class CosineDecayLR(LRScheduler):
    """Cosine annealing over the whole run (``CosineAnnealingLR`` with ``T_max = total_steps``), run-length linked.

    The CLI links ``total_steps`` from ``trainer.max_epochs`` (:mod:`lightning_dfd.wiring`), so the cosine ends at
    the last epoch whatever ``--trainer.max_epochs`` says; torch's ``CosineAnnealingLR`` needs ``T_max`` by hand
    and, left at a stale value, climbs back up after ``T_max`` epochs. The anti-spoofing configs (seed 001,
    Sec. 5.1: "cosine learning rate strategy") use it.

    Args:
        optimizer: the wrapped optimizer; its learning rate is the initial one.
        total_steps: length of the run in scheduler steps (``trainer.max_epochs`` with ``interval: epoch``).
        final_factor: last learning rate as a fraction of the initial one (0: decays to zero).
        last_epoch: index of the last step when resuming (-1 to start).
    """

    def __init__(self, optimizer: Optimizer, total_steps: int = 100, final_factor: float = 0.0,
                 last_epoch: int = -1) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        if not 0.0 <= final_factor <= 1.0:
            raise ValueError(f"final_factor must be in [0, 1], got {final_factor}")
        self.total_steps = total_steps
        self.final_factor = final_factor
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        factor = cosine_decay_factor(self.last_epoch, self.total_steps, self.final_factor)
        return [base_lr * factor for base_lr in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()
