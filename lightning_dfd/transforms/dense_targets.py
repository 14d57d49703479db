"""The interface of a targets transform: dense training targets a method needs, injected into a DataModule.

A DataModule knows nothing of methods. A method whose loss needs per-pixel targets made from the pseudo-fake's
blend mask (LAA-Net's heatmap and self-consistency maps, :class:`~lightning_dfd.transforms.laanet_targets.
LAANetTargets`) ships a :class:`TargetsTransform`; the config picks it::

    data:
      init_args:
        pseudo_fake: sbi
        targets_transform:
          class_path: lightning_dfd.transforms.laanet_targets.LAANetTargets
          init_args: {stride: 4}

The DataModule applies it to both halves of every training (real, pseudo-fake) pair after the shared
augmentation, converts the keys it lists in :attr:`TargetsTransform.keys` to ``float32`` tensors ``(1, h, w)``
and exposes :meth:`TargetsTransform.map_side` as ``target_map_size`` so the model's output size can be checked
against it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any


class TargetsTransform(ABC):
    """Adds dense targets to a training sample dict from its blend mask (``batch.MASK``) and ``batch.LABEL``.

    Subclasses set :attr:`keys`, implement ``__call__``, :meth:`map_side` and :meth:`config`, and draw any
    randomness from a generator that ``set_random_seed(seed)`` resets (so
    :func:`~lightning_dfd.transforms.seeding.reseed_transforms` gives every DataLoader worker its own stream).
    """

    #: sample keys the transform adds (each an array (h, w) or (1, h, w)).
    keys: tuple[str, ...] = ()

    @abstractmethod
    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``sample`` with :attr:`keys` added; ``sample[MASK]`` is (1, H, W) float in [0, 1]."""

    @abstractmethod
    def map_side(self, image_size: int) -> int:
        """Side of the (square) maps the transform makes for ``image_size`` crops."""

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """``{"class_path": ..., "init_args": {...}}`` of plain values that rebuilds this transform (it is stored
        in the DataModule's hyper-parameters, which checkpoints load with ``weights_only=True``)."""


def build_targets_transform(spec: TargetsTransform | Mapping[str, Any] | None) -> TargetsTransform | None:
    """An instance from an instance (returned as is), a ``{class_path, init_args}`` mapping, or None."""
    if spec is None or isinstance(spec, TargetsTransform):
        return spec
    if not isinstance(spec, Mapping) or "class_path" not in spec or set(spec) - {"class_path", "init_args"}:
        raise ValueError(f"targets_transform: expected a TargetsTransform or {{class_path, init_args}}, got {spec!r}")
    module_name, _, name = str(spec["class_path"]).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ValueError(f"targets_transform: cannot import class_path {spec['class_path']!r}: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, TargetsTransform)):
        raise TypeError(f"targets_transform: {spec['class_path']} is not a TargetsTransform subclass")
    return cls(**dict(spec.get("init_args") or {}))
