"""Hypersphere margin loss of the two-branch recurrent network (Masi et al., ECCV 2020; seed 004, Sec. 3.3, Eq. 2).

    L = 1/|Omega_nat| sum_{i in nat} max(0, ||Phi(I_i) - c|| - r_minus)
      + 1/|Omega_man| sum_{j in man} max(0, r_plus - ||Phi(I_j) - c||)

Natural clips are pulled inside the inner hypersphere of radius ``r_minus`` around the fixed real-face centre
``c``; manipulated clips are pushed outside the outer one, ``r_plus`` (margin ``r_plus - r_minus``). Each term is
averaged over its own class; a batch without natural (or manipulated) clips leaves that term out (it is 0, not
NaN). Radii (Sec. 4): 0.042 / 1.638 with the LSTM (``Phi`` 256-d), 2.5 / 97.5 without (1024-d, Table 1a).

The centre ``c`` (Sec. 3.3: the mean embedding of the natural training clips before training) is computed with
:func:`natural_clip_indices`, :func:`rank_share` and :func:`embedding_mean`: each DDP rank embeds its share of
the clips, and the sums and counts are all-reduced, so every rank gets the same mean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

#: (r_minus, r_plus) of Sec. 4 with the BiLSTM embedding (2 x 128 = 256-d).
RADII_WITH_LSTM = (0.042, 1.638)
#: (r_minus, r_plus) of Sec. 4 / Table 1a without the LSTM (the 1024-d pooled DenseNet feature).
RADII_WITHOUT_LSTM = (2.5, 97.5)


def check_radii(r_minus: float, r_plus: float) -> tuple[float, float]:
    """``(r_minus, r_plus)`` when ``0 < r_minus < r_plus`` (Sec. 3.3), else a ValueError naming the fix."""
    if not 0 < r_minus < r_plus:
        raise ValueError(f"the hypersphere loss needs 0 < r_minus < r_plus, got r_minus = {r_minus}, r_plus = "
                         f"{r_plus} (model.init_args.r_minus / r_plus)")
    return float(r_minus), float(r_plus)


def hypersphere_terms(distances: Tensor, labels: Tensor, r_minus: float, r_plus: float) -> tuple[Tensor, Tensor]:
    """The natural and manipulated terms of Eq. 2 for distances ``||Phi - c||`` (B,) and labels (B,) (0 real, 1 fake).

    A class absent from the batch contributes ``0`` (connected to the graph, so backward still works).
    """
    r_minus, r_plus = check_radii(r_minus, r_plus)
    distances = distances.reshape(-1)
    labels = labels.reshape(-1).to(distances.device)
    natural, manipulated = labels == 0, labels == 1
    zero = distances.sum() * 0.0
    nat = torch.clamp(distances[natural] - r_minus, min=0).mean() if bool(natural.any()) else zero
    man = torch.clamp(r_plus - distances[manipulated], min=0).mean() if bool(manipulated.any()) else zero
    return nat, man


class HypersphereLoss(nn.Module):
    """Eq. 2 as a module; ``forward(distances, labels) -> (loss, natural term, manipulated term)``.

    Args:
        r_minus: radius of the inner hypersphere natural clips are pulled into.
        r_plus: radius of the outer hypersphere manipulated clips are pushed out of (``> r_minus``).
    """

    def __init__(self, r_minus: float = RADII_WITH_LSTM[0], r_plus: float = RADII_WITH_LSTM[1]) -> None:
        super().__init__()
        self.r_minus, self.r_plus = check_radii(r_minus, r_plus)

    def forward(self, distances: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        nat, man = hypersphere_terms(distances, labels, self.r_minus, self.r_plus)
        return nat + man, nat, man

    def extra_repr(self) -> str:
        return f"r_minus={self.r_minus}, r_plus={self.r_plus}"


# ------------------------------------------------------------------------------------------ the centre c
def natural_clip_indices(unit_labels: Sequence[int] | np.ndarray, max_clips: int | None = None) -> np.ndarray:
    """Positions of the natural (label 0) units; at most ``max_clips`` of them, evenly spaced (deterministic, so
    every rank picks the same ones)."""
    natural = np.flatnonzero(np.asarray(unit_labels) == 0)
    if max_clips is not None and len(natural) > max_clips:
        natural = natural[np.linspace(0, len(natural) - 1, int(max_clips)).round().astype(np.int64)]
    return natural


def rank_share(indices: np.ndarray, rank: int, world_size: int) -> list[int]:
    """The indices one rank embeds: every ``world_size``-th, from position ``rank`` (disjoint, covering all)."""
    return [int(i) for i in indices[rank::world_size]]


def all_reduce_mean(total: Tensor, count: Tensor) -> Tensor:
    """``sum(total) / sum(count)`` over the DDP ranks (this process alone without a process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(total)
        torch.distributed.all_reduce(count)
    if float(count) <= 0:
        raise ValueError("the two-branch centre c needs natural (label 0) training clips; the training split has "
                         "none (check data.init_args.protocol / methods)")
    return total / count


def embedding_mean(embed: Callable[[Any], Tensor], batches: Iterable[Any], dim: int,
                   device: torch.device | str = "cpu") -> Tensor:
    """Mean of ``embed(batch)`` rows over this rank's ``batches`` and every other rank's (float64 sums)."""
    total = torch.zeros(dim, dtype=torch.float64, device=device)
    count = torch.zeros((), dtype=torch.float64, device=device)
    for batch in batches:
        embedding = embed(batch).double()
        total += embedding.sum(dim=0)
        count += embedding.shape[0]
    return all_reduce_mean(total, count)
