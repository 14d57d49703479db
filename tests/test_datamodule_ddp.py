"""Under DDP every video is evaluated by exactly one rank, whole; training shards cover the epoch's draw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.helpers.face_manifests import build_manifest, ffpp_videos
from tests.helpers.ports import free_port

WORLD = 2


def _rank_main(rank: int, port: int, root: str, out: str) -> None:
    from lightning_dfd.datamodules import FFPPDataModule, VideoShardSampler

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        dm = FFPPDataModule(root, batch_size=3, num_workers=0, image_size=16, frames_per_video=2, seed=4)
        dm.setup("fit")
        dm.setup("test")
        result = {}
        for stage, loader in (("val", dm.val_dataloader()), ("test", dm.test_dataloader())):
            assert isinstance(loader.sampler, VideoShardSampler)
            result[stage] = [[video, int(frame)] for batch in loader
                             for video, frame in zip(batch["video_id"], batch["frame_index"])]
        train = dm.train_dataloader()
        train.sampler.set_epoch(1)
        result["train_units"] = list(train.sampler)
        result["train_epoch"] = train.sampler.epoch_indices().tolist()
        Path(out, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.mark.ddp
def test_video_sharding_over_two_gloo_ranks(tmp_path):
    root = tmp_path / "ffpp"
    # 5 val and 15 test videos of 3 frames: an odd count, so a padding sampler would duplicate
    build_manifest(root, ffpp_videos({"train": ["000", "001"], "val": ["002"], "test": ["003", "004", "005"]}),
                   frames=3, size=(16, 16), landmarks=False)
    mp.spawn(_rank_main, args=(free_port(), str(root), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    for stage, videos in (("val", 5), ("test", 15)):
        frames = [[tuple(item) for item in rank[stage]] for rank in ranks]
        union = frames[0] + frames[1]
        assert len(union) == len(set(union)) == videos * 3  # every frame once, no padding duplicates
        owners = [{video for video, _ in rank_frames} for rank_frames in frames]
        assert not (owners[0] & owners[1])  # each video on exactly one rank
        assert len(owners[0] | owners[1]) == videos
        assert all(owners)  # both ranks get work
    # training: the two ranks' shards are disjoint halves of one shared, seeded epoch draw
    assert ranks[0]["train_epoch"] == ranks[1]["train_epoch"]
    assert sorted(ranks[0]["train_units"] + ranks[1]["train_units"]) == sorted(ranks[0]["train_epoch"])
    assert not set(ranks[0]["train_units"]) & set(ranks[1]["train_units"])
    assert len(ranks[0]["train_units"]) == len(ranks[1]["train_units"]) == 10  # 10 videos x 2 frames, halved
