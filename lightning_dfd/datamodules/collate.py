"""Batch collation: string keys become lists, tensors stack, (real, pseudo-fake) pairs become reals-then-fakes.

SBI (Shiohara & Yamasaki 2022, Sec. 3.3) trains on batches holding every real crop *and* its self-blended
twin; :func:`collate_pairs` builds them so that the first half of the batch is the reals (label 0) and the
second half their pseudo-fakes in the same order (label 1): sample ``i`` and ``i + B/2`` share a source frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch.utils.data import default_collate


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``default_collate`` on sample dicts: tensors/ints stack, ``str`` values (``VIDEO_ID``, ``METHOD``) become
    lists (keys: :mod:`lightning_dfd.batch`)."""
    return default_collate(list(samples))


def collate_pairs(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """Reals first, then their pseudo-fakes in the same order, as one batch of ``2 * len(pairs)`` samples."""
    reals = [real for real, _ in pairs]
    fakes = [fake for _, fake in pairs]
    return default_collate(reals + fakes)
