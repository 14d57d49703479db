"""Named random streams: every random draw of the twin comes from ``stream(seed, *names)``.

A stream depends only on the seed and its names (e.g. ``("identity", 3)`` or ``("track", "ffpp/017")``),
never on the order in which videos are rendered, so any subset of a twin can be re-rendered (or rendered in
parallel) and comes out identical.
"""

from __future__ import annotations

import zlib

import numpy as np


def _name_to_int(name: object) -> int:
    """A stable 32-bit code for ``name`` (Python's ``hash`` is salted per process, crc32 is not)."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool) and 0 <= int(name) < 2**32:
        return int(name)
    return zlib.crc32(repr(name).encode("utf-8"))


def stream(seed: int, *names: object) -> np.random.Generator:
    """A generator seeded by ``seed`` and the names, independent of every other named stream."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(_name_to_int(name) for name in names)])
