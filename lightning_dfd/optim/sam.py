"""Sharpness-Aware Minimization (Foret et al., ICLR 2021), wrapping a base optimizer (Adam for LAA-Net).

One SAM update is two forward/backward passes:

1. gradients g at w; ``first_step()`` moves to w + e(w), e(w) = rho * g / ||g||_2 (ASAM, ``adaptive``:
   e(w) = rho * w^2 g / ||w g||_2), the norm taken over all parameters of all groups;
2. gradients at w + e(w); ``step()`` (or ``second_step()``) restores w exactly and lets the base optimizer update
   w with these gradients.

Plain PyTorch::

    loss_fn(model(x)).backward(); sam.first_step(zero_grad=True)
    loss_fn(model(x)).backward(); sam.step(); sam.zero_grad()

or ``sam.full_step(closure)`` with a closure that zeroes, computes the loss and back-propagates.

Lightning (manual optimisation, as ``methods/laanet.py`` does): ``manual_backward``, ``first_step``, second
forward, ``manual_backward``, then ``self.optimizers().step()``: Lightning calls ``step(closure)`` with its own
hook closure, which runs before the second step (so ``on_before_optimizer_step`` sees the perturbed-point
gradients).

* DDP: Lightning prepares the DDP reducer before every ``manual_backward``, so BOTH backward passes all-reduce;
  e(w) is therefore computed from the globally averaged gradient and is identical on every rank (no ``no_sync``
  anywhere: it costs one extra all-reduce per step and keeps the ranks bit-identical).
* Mixed precision: ``bf16-mixed`` needs nothing (no loss scaling). With ``16-mixed`` the first-pass gradients
  are scaled, which leaves the direction g / ||g|| unchanged; a non-finite first-pass norm gives e(w) = 0 (no
  perturbation), and when the GradScaler skips ``step()`` on an overflow the caller must call ``restore()``
  (``methods/laanet.py`` does) so the weights return to w.
* State: ``state`` and ``param_groups`` are the base optimizer's own objects, so checkpoints hold the Adam moments,
  LR schedulers change the base learning rate, and device moves reach the base state.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


class SAM(Optimizer):
    """Sharpness-Aware Minimization around ``base_optimizer``.

    Args:
        params: parameters or parameter groups.
        base_optimizer: the optimizer factory applied at the perturbed point (``torch.optim.Adam`` by default;
            in YAML a ``class_path`` with its ``init_args``: lr, weight_decay, ...).
        rho: radius of the neighbourhood (0.05 by default, as Foret et al.).
        adaptive: ASAM's scale-invariant perturbation (Kwon et al. 2021).
    """

    def __init__(self, params: Iterable[Any], base_optimizer: Callable[[Iterable[Any]], Optimizer] = torch.optim.Adam,
                 rho: float = 0.05, adaptive: bool = False) -> None:
        if rho < 0.0:
            raise ValueError(f"SAM rho must be non-negative, got {rho}")
        super().__init__(params, {"rho": rho, "adaptive": adaptive})
        self.base_optimizer = base_optimizer(self.param_groups)
        # share the base optimizer's groups (learning rates) and state (moments) instead of keeping copies
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)
        self._origin: dict[Tensor, Tensor] = {}
        self._first_step_done = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "base_optimizer"):  # called by Optimizer.__init__ for the initial groups
            super().add_param_group(param_group)
            return
        param_group.setdefault("rho", self.defaults["rho"])
        param_group.setdefault("adaptive", self.defaults["adaptive"])
        self.base_optimizer.add_param_group(param_group)

    @property
    def is_perturbed(self) -> bool:
        """True between ``first_step`` and the restoring ``second_step`` / ``restore``."""
        return self._first_step_done

    @torch.no_grad()
    def _grad_norm(self) -> Tensor:
        norms = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad.abs() * p.abs() if group["adaptive"] else p.grad
                norms.append(torch.linalg.vector_norm(grad.float()))
        if not norms:
            return torch.zeros(())
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Climb to w + e(w) using the current gradients (computed at w)."""
        if self._first_step_done:
            raise RuntimeError("SAM.first_step() called twice without a second_step()/restore() in between")
        grad_norm = self._grad_norm()
        finite = torch.isfinite(grad_norm)
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                e_w = p.grad * scale.to(p)
                if group["adaptive"]:
                    e_w = e_w * p.pow(2)
                e_w = torch.where(finite.to(p.device), e_w, torch.zeros_like(e_w))
                self._origin[p] = p.detach().clone()
                p.add_(e_w)
        self._first_step_done = True
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Put the weights back to w (exactly: the values saved by ``first_step``)."""
        for p, origin in self._origin.items():
            p.copy_(origin)
        self._origin.clear()
        self._first_step_done = False

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Return to w and update it with the gradients taken at w + e(w)."""
        if not self._first_step_done:
            raise RuntimeError("SAM.second_step()/step() called without first_step(): SAM needs two passes "
                               "(with Lightning use manual optimisation, see lightning_dfd.methods.laanet; in "
                               "plain PyTorch use first_step/step or full_step(closure))")
        self.restore()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """The second step. ``closure``, if given, runs first (with grad enabled) at the perturbed weights."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.second_step()
        return loss

    def full_step(self, closure: Callable[[], Tensor]) -> Tensor:
        """Both SAM passes; ``closure`` must zero the gradients, compute the loss, back-propagate and return it."""
        with torch.enable_grad():
            loss = closure()
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state = self.base_optimizer.state


def laanet_sam(params: Iterable[Any]) -> SAM:
    """LAA-Net's optimiser (Sec. 4.1): SAM (rho 0.05) around Adam, weight decay 1e-4, peak learning rate 2e-4."""
    return SAM(params, base_optimizer=lambda groups: torch.optim.Adam(groups, lr=2e-4, weight_decay=1e-4), rho=0.05)


@contextlib.contextmanager
def batchnorm_stats_frozen(module: nn.Module) -> Iterator[None]:
    """Keep BatchNorm running statistics unchanged (momentum 0) inside the block: SAM's second forward pass
    at w + e(w) must not count the batch twice in the running mean/variance."""
    saved = []
    for layer in module.modules():
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.training:
            saved.append((layer, layer.momentum))
            layer.momentum = 0.0
    try:
        yield
    finally:
        for layer, momentum in saved:
            layer.momentum = momentum
