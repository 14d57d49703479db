"""The two-branch centre c on two gloo ranks (seed 004, Sec. 3.3): each rank embeds its share of the natural clips
(the method's ``rank_share``), the sums and counts are all-reduced (``embedding_mean``), and both ranks end with the
single-process mean. The embedding is a fixed linear map so the spawned ranks stay light (no timm / Lightning)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_dfd.losses.hypersphere import embedding_mean, natural_clip_indices, rank_share
from tests.helpers.ports import free_port

WORLD_SIZE = 2
LABELS = np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0])  # 8 natural clips: 4 on each rank after the cap below


def clips() -> torch.Tensor:
    return torch.randn(len(LABELS), 6, generator=torch.Generator().manual_seed(1))


def embed(batch: torch.Tensor) -> torch.Tensor:
    weight = torch.randn(6, 4, generator=torch.Generator().manual_seed(2))
    return batch @ weight


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        data = clips()
        mine = rank_share(natural_clip_indices(LABELS, max_clips=7), rank, WORLD_SIZE)
        batches = [data[mine[i:i + 2]] for i in range(0, len(mine), 2)]  # batches of 2, as a DataLoader would
        center = embedding_mean(embed, batches, dim=4)
        torch.save({"center": center, "mine": mine}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_centre_is_identical_on_two_gloo_ranks_and_equals_the_single_process_mean(tmp_path):
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD_SIZE)]
    assert torch.equal(ranks[0]["center"], ranks[1]["center"])
    # the shares are disjoint and together the 7 evenly spaced natural clips
    natural = np.flatnonzero(LABELS == 0)
    capped = natural[np.round(np.linspace(0, len(natural) - 1, 7)).astype(int)]
    assert sorted(ranks[0]["mine"] + ranks[1]["mine"]) == capped.tolist()
    assert len(ranks[0]["mine"]) == 4 and len(ranks[1]["mine"]) == 3  # unequal counts: a mean of means would be off
    expected = (clips()[capped].double() @ torch.randn(6, 4, generator=torch.Generator().manual_seed(2)).double())
    torch.testing.assert_close(ranks[0]["center"], expected.mean(dim=0))
