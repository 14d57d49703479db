"""Every method under DDP (2 gloo processes on CPU), through the CLI, on a twin.

One row of :data:`CASES` per method (a config and the twin it runs on; add a row for a new method). For each:

* ``fit`` under ``--trainer.strategy ddp --trainer.devices 2`` for one epoch, then ``fit --ckpt_path last`` to a
  second epoch (resume under DDP): the global step doubles, the checkpoints are written once (one ``last.ckpt``,
  no ``-v1`` duplicates), and the two ranks hold identical parameters *and* buffers when they validate and when
  training ends: the gradient all-reduce (both SAM passes for LAA-Net) and DDP's BatchNorm buffer broadcast leave
  nothing rank-local;
* ``test`` of the final checkpoint under DDP equals ``test`` in one process on the same data: every frame and video
  metric (float tolerance), and the very same frames (video id, score) entered them: none twice, none missing.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from lightning_dfd.cli import main

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class DDPCase:
    """One method's DDP check.

    Args:
        configs: training config(s), relative to the repository (an overlay after its base).
        twin: key of the ``twins`` fixture the config runs on.
        args: extra CLI arguments that keep the run tiny.
    """

    configs: tuple[str, ...]
    twin: str
    args: tuple[str, ...] = ()


#: method -> its DDP check; one line per method.
CASES: dict[str, DDPCase] = {
    "binary": DDPCase(("conf/demo/binary_ffpp_twin.yaml",), "ffpp"),
    "laanet_sam": DDPCase(("conf/demo/laanet_ffpp_twin.yaml",), "ffpp", ("--data.init_args.batch_size", "2")),
    "anti_spoofing": DDPCase(("conf/anti_spoofing/attack_fold1.yaml", "conf/anti_spoofing/resnet18.yaml"),
                             "casia_surf"),
    # the real-face centre c is a buffer: equal on both ranks (all-reduced at fit start) or the buffer check fails
    "two_branch": DDPCase(("conf/two_branch/ffpp_c23.yaml",), "ffpp",
                          ("--model.init_args.backbone_args", "{growth_rate: 8, block_config: [1, 1, 1, 1]}",
                           "--data.init_args.clip_length", "2", "--data.init_args.clip_stride", "1")),
    "dldfd": DDPCase(("conf/dldfd/combined.yaml",), "ffpp", ("--model.init_args.backbone", "resnet10t")),
}
# DefakeHop fits in one process and refuses DDP with one line (tests/test_defakehop_method.py).

#: on CPU (gloo) without sync_batchnorm: torch's SyncBatchNorm runs on GPUs only (the SLURM jobs turn it on there);
#: DDP's buffer broadcast at every forward keeps the ranks' BatchNorm statistics equal, which the test checks.
DDP = ["--trainer.accelerator", "cpu", "--trainer.strategy", "ddp", "--trainer.devices", "2"]
HELPERS = "tests.helpers.cluster_callbacks"


def common(case: DDPCase, cache: Path, root: Path) -> list[str]:
    configs = [word for config in case.configs for word in ("--config", str(ROOT / config))]
    return [*configs, "--data.init_args.path", str(cache),
            "--data.init_args.image_size", "64", "--data.init_args.batch_size", "4",
            "--data.init_args.num_workers", "0", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(root), *case.args]


def run_cli(args: list[str], cwd: Path) -> None:
    """``python -m lightning_dfd ARGS`` in a fresh process (Lightning's DDP launcher re-runs that command per rank)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    env.pop("LOCAL_RANK", None)
    result = subprocess.run([sys.executable, "-m", "lightning_dfd", *args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args[:3])} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"


def assert_ranks_agree(out: Path) -> int:
    for moment in ("val_", ""):  # while validating (first batch of the last validation), at the end of training
        ranks = [torch.load(out / f"{moment}rank{r}.pt", weights_only=True, map_location="cpu") for r in range(2)]
        assert ranks[0]["global_step"] == ranks[1]["global_step"]
        assert set(ranks[0]["state"]) == set(ranks[1]["state"])
        assert any("running_mean" in name for name in ranks[0]["state"])  # BatchNorm statistics are checked too
        for name, value in ranks[0]["state"].items():
            assert torch.equal(value, ranks[1]["state"][name]), f"{moment}{name} differs between the two ranks"
    return ranks[0]["global_step"]


def checkpoint_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "checkpoints").glob("*.ckpt"))


@pytest.mark.ddp
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_method_under_ddp_matches_one_process(name, twins, tmp_path, monkeypatch):
    case = CASES[name]
    cache = twins[case.twin][1]
    root = tmp_path / "run"
    fit = ["fit", *common(case, cache, root), *DDP, f"--trainer.callbacks+={HELPERS}.SaveRankState"]

    run_cli([*fit, "--trainer.callbacks.out", str(tmp_path / "epoch1"), "--trainer.max_epochs", "1"], tmp_path)
    steps = assert_ranks_agree(tmp_path / "epoch1")
    assert steps >= 1
    names = checkpoint_names(root)
    assert names.count("last.ckpt") == 1 and len(names) == 2 and not [n for n in names if "-v" in n], names

    run_cli([*fit, "--trainer.callbacks.out", str(tmp_path / "epoch2"), "--trainer.max_epochs", "2",
             "--ckpt_path", "last"], tmp_path)
    assert assert_ranks_agree(tmp_path / "epoch2") == 2 * steps  # resumed, not restarted
    names = checkpoint_names(root)
    assert names.count("last.ckpt") == 1 and len(names) == 2 and not [n for n in names if "-v" in n], names
    last = root / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True, map_location="cpu")["global_step"] == 2 * steps

    test = ["test", *common(case, cache, tmp_path / "test_ddp"), "--ckpt_path", str(last),
            f"--trainer.callbacks+={HELPERS}.SaveTestScores"]
    run_cli([*test, *DDP, "--trainer.callbacks.out", str(tmp_path / "scores_ddp")], tmp_path)

    monkeypatch.chdir(tmp_path)
    single = ["test", *common(case, cache, tmp_path / "test_single"), "--ckpt_path", str(last),
              f"--trainer.callbacks+={HELPERS}.SaveTestScores", "--trainer.callbacks.out",
              str(tmp_path / "scores_single"), "--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    main(single)

    alone = torch.load(tmp_path / "scores_single" / "rank0.pt", weights_only=True)
    assert alone["world_size"] == 1
    for rank in range(2):
        ddp = torch.load(tmp_path / "scores_ddp" / f"rank{rank}.pt", weights_only=True)
        assert ddp["world_size"] == 2
        assert set(ddp["metrics"]) == set(alone["metrics"])
        for key, value in alone["metrics"].items():
            got = ddp["metrics"][key]
            assert (math.isnan(got) and math.isnan(value)) or got == pytest.approx(value, abs=1e-5), key
        # the same frames entered the metrics: same (video, score) pairs, each exactly once
        for level in ("frame", "video"):
            pairs = lambda s: sorted(zip(s[f"{level}_video_idx" if level == "frame" else "video_idx"].tolist(),  # noqa
                                         s[f"{level}_ranking"].tolist()))
            got, expected = pairs(ddp["scores"]), pairs(alone["scores"])
            assert len(got) == len(expected)
            for (video_a, score_a), (video_b, score_b) in zip(got, expected):
                assert video_a == video_b and score_a == pytest.approx(score_b, abs=1e-4)
        videos = ddp["scores"]["video_idx"].tolist()
        assert len(videos) == len(set(videos)) == len(set(alone["scores"]["frame_video_idx"].tolist()))
    assert (tmp_path / "test_ddp" / "test_metrics.json").is_file()
