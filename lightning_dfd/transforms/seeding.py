"""Per-worker reseeding of albumentations 2.0.8 transforms (and anything with ``set_random_seed``).

Two pitfalls of albumentations 2.0.8 make augmentations silently correlated:

* forked DataLoader workers inherit the parent's generator state, so every worker draws the *same* augmentations
  (each transform owns ``py_random`` / ``random_generator``, untouched by ``torch``/``numpy`` seeding);
* ``Compose(seed=k)`` (and ``Compose.set_random_seed``) gives every child transform the *same* seed k, so children
  make correlated decisions (two ``p=0.5`` transforms fire together).

:func:`worker_init_fn` fixes both: in each worker it derives a seed from ``torch.initial_seed()`` (distinct per
worker and per epoch, reproducible under ``torch.manual_seed`` / ``seed_everything``) and hands every transform
found in the worker's dataset its own child seed (``numpy.random.SeedSequence.spawn`` in a fixed traversal
order). Use ``DataLoader(..., worker_init_fn=worker_init_fn)``; with ``num_workers=0`` call
``reseed_transforms(dataset, seed)`` once in ``setup``.
"""

from __future__ import annotations

import random
import types
from typing import Any

import numpy as np
import torch
from albumentations.core.composition import BaseCompose

__all__ = ["reseed_transforms", "worker_init_fn"]

_SKIP_TYPES = (str, bytes, int, float, bool, complex, type(None), np.ndarray, np.generic, torch.Tensor,
               types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, random.Random,
               np.random.Generator, np.random.BitGenerator)
_MAX_SEQUENCE = 256  # lists longer than this (file lists, manifests) are data, not transforms


def _children(obj: Any) -> list[Any]:
    """Objects reachable from ``obj`` in a deterministic order (attributes, sequence items, dict values)."""
    if isinstance(obj, BaseCompose):
        return list(obj.transforms)
    if isinstance(obj, dict):
        return list(obj.values()) if len(obj) <= _MAX_SEQUENCE else []
    if isinstance(obj, (list, tuple)):
        return list(obj) if len(obj) <= _MAX_SEQUENCE else []
    attributes = getattr(obj, "__dict__", None)
    if attributes is None:
        return []
    return [value for name, value in attributes.items() if not name.startswith("__")]


def reseed_transforms(root: Any, seed: int, max_depth: int = 8) -> int:
    """Give every object under ``root`` that has ``set_random_seed`` (albumentations transforms and composes,
    :class:`~lightning_dfd.transforms.targets.LaaNetTargets`) its own seed derived from ``seed``.

    Composes are seeded first and their children after, so children never share the compose's seed.
    Returns the number of objects reseeded.
    """
    sequence = np.random.SeedSequence(int(seed) % (2 ** 128))
    seen: set[int] = set()
    count = 0
    stack: list[tuple[Any, int]] = [(root, 0)]
    while stack:
        obj, depth = stack.pop()
        if isinstance(obj, _SKIP_TYPES) or id(obj) in seen or depth > max_depth:
            continue
        if type(obj).__module__.startswith(("pandas", "pyarrow", "torch.nn")):
            continue
        seen.add(id(obj))
        setter = getattr(obj, "set_random_seed", None)
        if callable(setter) and not isinstance(obj, type):
            child_seed = int(sequence.spawn(1)[0].generate_state(1, np.uint32)[0])
            setter(child_seed)
            count += 1
        stack.extend((child, depth + 1) for child in reversed(_children(obj)))
    return count


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: reseed Python, NumPy and every transform of this worker's dataset copy from
    ``torch.initial_seed()`` (= the loader's base seed + ``worker_id``)."""
    seed = torch.initial_seed()
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    info = torch.utils.data.get_worker_info()
    if info is not None:
        reseed_transforms(info.dataset, seed)
