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

Per-worker streams still depend on how many samples each worker has drawn, so they cannot be replayed from a
mid-epoch checkpoint (a resumed run starts fresh workers) and they change with ``num_workers``. Training therefore
reseeds *per sample*: the sampler hands out :class:`~lightning_dfd.datamodules.samplers.SeededIndex` es whose
``seed`` comes from ``(base seed, epoch, position in the epoch)``, and :class:`SampleSeededDataset` reseeds every
transform from it before building the sample. A sample's augmentation is then a pure function of (seed, epoch,
position): the same with 0, 1 or 8 workers, and the same after a resume.
"""

from __future__ import annotations

import random
import types
from typing import Any

import numpy as np
import torch
from albumentations.core.composition import BaseCompose
from torch.utils.data import Dataset

__all__ = ["SampleSeededDataset", "reseed_transforms", "seedable_objects", "worker_init_fn"]

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


def seedable_objects(root: Any, max_depth: int = 8) -> list[Any]:
    """Every object under ``root`` with a ``set_random_seed`` method (albumentations transforms and composes,
    :class:`~lightning_dfd.transforms.targets.LaaNetTargets`), in a fixed depth-first order, composes before
    their children."""
    seen: set[int] = set()
    found: list[Any] = []
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
            found.append(obj)
        stack.extend((child, depth + 1) for child in reversed(_children(obj)))
    return found


def reseed_objects(objects: list[Any], seed: int) -> int:
    """Give each object its own child seed of ``SeedSequence(seed)``, in order (a compose's own reseeding of its
    children is then overridden by theirs, so children never share the compose's seed)."""
    children = np.random.SeedSequence(int(seed) % (2 ** 128)).spawn(len(objects))
    for obj, child in zip(objects, children):
        obj.set_random_seed(int(child.generate_state(1, np.uint32)[0]))
    return len(objects)


def reseed_transforms(root: Any, seed: int, max_depth: int = 8) -> int:
    """Give every object under ``root`` that has ``set_random_seed`` (albumentations transforms and composes,
    :class:`~lightning_dfd.transforms.targets.LaaNetTargets`) its own seed derived from ``seed``.

    Composes are seeded first and their children after, so children never share the compose's seed.
    Returns the number of objects reseeded.
    """
    return reseed_objects(seedable_objects(root, max_depth), seed)


class SampleSeededDataset(Dataset):
    """A map-style dataset whose random transforms are reseeded before each sample from the index's ``seed``.

    Indices without a ``seed`` attribute (plain ints) are served as they are. Attributes not found here are read
    from the wrapped dataset (``unit_labels``, ``unit_video_ids``...).

    Args:
        dataset: the dataset to wrap (its transforms are found once per process with :func:`seedable_objects`).
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self._objects: list[Any] | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        seed = getattr(index, "seed", None)
        if seed is not None:
            if self._objects is None:
                self._objects = seedable_objects(self.dataset)
            reseed_objects(self._objects, seed)
            if torch.utils.data.get_worker_info() is not None:  # worker-global streams too (main process: untouched)
                random.seed(seed)
                np.random.seed(seed % (2 ** 32))
        return self.dataset[int(index)]

    def __getattr__(self, name: str) -> Any:
        if name in ("dataset", "_objects") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getstate__(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "_objects": None}  # found again in each worker


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: reseed Python, NumPy and every transform of this worker's dataset copy from
    ``torch.initial_seed()`` (= the loader's base seed + ``worker_id``)."""
    seed = torch.initial_seed()
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    info = torch.utils.data.get_worker_info()
    if info is not None:
        reseed_transforms(info.dataset, seed)
