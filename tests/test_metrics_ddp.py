"""Metrics across 2 gloo processes equal the single-process values on the same data.

The data are sharded unevenly; frames of one video sit on both ranks; one group's fakes and name live on
rank 1 only; one metric receives no data at all on rank 1 (the empty-rank corner of torchmetrics' sync).
``DetectionScores`` also gets float64 log-odds above float32's saturation (its ``log_odds`` state).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from lightning_dfd.metrics import (
    AntiSpoofingErrors,
    AveragePrecision,
    DetectionScores,
    EqualErrorRate,
    LogWeightedPrecision,
    PartialAUC,
    RocAUC,
    Scoring,
    ThresholdAccuracy,
    TPRAtFPR,
    TruncatedAUC,
    group_index,
)
from tests.helpers.ports import free_port

pytestmark = pytest.mark.ddp

WORLD_SIZE = 2
GROUPS = ("real", "Deepfakes", "Face2Face", "NeuralTextures")
NAMES_REGISTERED_ON = {0: ("real", "Deepfakes"), 1: ("Face2Face", "NeuralTextures")}


def make_frames(seed: int = 0, n_videos: int = 48) -> dict[str, torch.Tensor]:
    """Frames (shuffled) of videos with 2-9 frames; fakes split over three groups; coarse (tied) scores."""
    g = torch.Generator().manual_seed(seed)
    frames_per_video = torch.randint(2, 10, (n_videos,), generator=g)
    video = torch.repeat_interleave(torch.arange(n_videos), frames_per_video) * 7919 + 13  # arbitrary ids
    video_number = torch.repeat_interleave(torch.arange(n_videos), frames_per_video)
    target = (video_number % 4 != 0).long()
    group_name_index = torch.where(target == 1, 1 + video_number % 3, torch.zeros_like(video_number))
    group = torch.tensor([group_index(GROUPS[i]) for i in group_name_index.tolist()], dtype=torch.int64)
    offset = torch.rand(n_videos, generator=g)[video_number] * 0.6 + 0.3 * target
    preds = torch.round((offset + 0.1 * torch.randn(target.numel(), generator=g)).clamp(0, 1) * 40) / 40
    # ranking scores in the range where float32 probabilities are all 1.0 (and not tied with each other)
    log_odds = 17.0 + 20.0 * preds.double() + 1e-3 * torch.randn(target.numel(), generator=g, dtype=torch.float64)
    order = torch.randperm(target.numel(), generator=g)
    return {"preds": preds[order].float(), "target": target[order], "video_idx": video[order],
            "group_idx": group[order], "group_name_index": group_name_index[order], "log_odds": log_odds[order]}


def shard(frames: dict[str, torch.Tensor], rank: int) -> dict[str, torch.Tensor]:
    """Uneven split: NeuralTextures frames all on rank 1; about a third of the others on rank 0."""
    g = torch.Generator().manual_seed(123)
    on_rank0 = (torch.rand(frames["target"].numel(), generator=g) < 0.35) & (frames["group_name_index"] != 3)
    keep = on_rank0 if rank == 0 else ~on_rank0
    return {k: v[keep] for k, v in frames.items()}


def build_metrics() -> dict[str, torch.nn.Module]:
    return {
        "scores_mean": DetectionScores(Scoring(aggregation="mean", log_wp_recalls=(0.5, 0.9))),
        "scores_vote": DetectionScores(Scoring(aggregation="vote", threshold=0.45, fpr_points=(0.05,),
                                               tauc_reading="far_grid")),
        "scores_max_bona_fide": DetectionScores(Scoring(aggregation="max", fpr_points=(0.1, 0.02),
                                                        tpr_positive="bona_fide")),
        "auc": RocAUC(), "ap": AveragePrecision(), "eer": EqualErrorRate(), "tpr": TPRAtFPR(fpr=(0.1, 0.01)),
        "tpr_bona_fide": TPRAtFPR(fpr=(0.1, 0.01), positive_label=0), "acc": ThresholdAccuracy(0.4),
        "pauc": PartialAUC(0.1), "tauc": TruncatedAUC(0.1), "log_wp": LogWeightedPrecision((0.5, 0.9)),
        "acer": AntiSpoofingErrors(), "auc_rank0_only": RocAUC(),
    }


def feed_and_compute(metrics: dict[str, torch.nn.Module], frames: dict[str, torch.Tensor], rank: int | None
                     ) -> dict[str, object]:
    """Update in batches of 16 and compute; ``rank`` None = single process. Returns plain results."""
    registered = GROUPS if rank is None else NAMES_REGISTERED_ON[rank]
    for name in ("scores_mean", "scores_vote", "scores_max_bona_fide"):
        for group in registered:
            metrics[name].register_group(group)
    n = frames["target"].numel()
    for lo in range(0, n, 16):
        batch = {k: v[lo:lo + 16] for k, v in frames.items()}
        for name, metric in metrics.items():
            if name.startswith("scores"):
                metric.update(batch["preds"], batch["target"], batch["video_idx"], batch["group_idx"],
                              log_odds=batch["log_odds"])
            elif name == "acer":
                metric.update(batch["preds"], batch["target"], attack_type=batch["group_idx"])
            elif name == "auc_rank0_only":
                if rank in (None, 0):
                    metric.update(batch["preds"], batch["target"])
            else:
                metric.update(batch["preds"], batch["target"])
    results: dict[str, object] = {}
    for name, metric in metrics.items():
        value = metric.compute()
        if isinstance(value, dict):
            results.update({f"{name}:{k}": v.tolist() for k, v in value.items()})
        else:
            results[name] = value.tolist()
    results["last_scores_video_preds"] = metrics["scores_mean"].last_scores["video_preds"].tolist()
    results["last_scores_video_idx"] = metrics["scores_mean"].last_scores["video_idx"].tolist()
    results["last_scores_video_ranking"] = metrics["scores_mean"].last_scores["video_ranking"].tolist()
    return results


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        frames = shard(make_frames(), rank)
        results = feed_and_compute(build_metrics(), frames, rank)
        torch.save({"n_frames": frames["target"].numel(), "results": results}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def assert_same(got: object, expected: object, key: str) -> None:
    if isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), key
        for a, b in zip(got, expected):
            assert_same(a, b, key)
    elif math.isnan(expected):
        assert math.isnan(got), key
    else:
        assert got == pytest.approx(expected, abs=1e-6), key


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_metrics_across_two_gloo_ranks_equal_single_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD_SIZE, join=True)
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD_SIZE)]
    frames = make_frames()
    assert per_rank[0]["n_frames"] + per_rank[1]["n_frames"] == frames["target"].numel()
    assert per_rank[0]["n_frames"] < per_rank[1]["n_frames"] - 10  # uneven
    expected = feed_and_compute(build_metrics(), frames, rank=None)
    # the per-group names of both ranks made it into the keys
    for level in ("frame", "video"):
        for group in ("Deepfakes", "Face2Face", "NeuralTextures"):
            assert f"scores_mean:{level}/auc/{group}" in expected
    assert not any(key.endswith("/real") for key in expected)
    assert "scores_max_bona_fide:video/tpr_bona_fide@fpr=1e-1" in expected
    assert not math.isnan(expected["scores_mean:frame/auc"]) and expected["scores_mean:frame/auc"] > 0.6
    for rank_result in per_rank:
        assert set(rank_result["results"]) == set(expected)
        for key, value in expected.items():
            if key != "auc_rank0_only":
                assert_same(rank_result["results"][key], value, key)
    # the metric that saw no data on rank 1 equals the single-process value on rank 0's frames, on both ranks
    rank0_frames = shard(frames, 0)
    rank0_alone = RocAUC()
    rank0_alone.update(rank0_frames["preds"], rank0_frames["target"])
    for rank_result in per_rank:
        assert rank_result["results"]["auc_rank0_only"] == pytest.approx(rank0_alone.compute().item(), abs=1e-6)
