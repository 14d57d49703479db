"""Sweep files and `python -m lightning_dfd sweep --offline`.

* every swept key of every ``sweeps/*.yaml`` (a new file is picked up by the glob) is a LightningCLI key of the
  config its ``command`` runs: ``fit --config X --key=value ... --print_config`` parses and prints each value where
  the key says;
* the command macros expand as W&B's agent expands them;
* a 3-trial offline sweep of ``sweeps/binary.yaml`` on the FF++ twin runs the grid's first three points in order
  and writes the results table (CSV + PNG) whose metric is what each trial's checkpoint monitor recorded.
"""

from __future__ import annotations

import csv
import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

from lightning_dfd.cli import main
from lightning_dfd.cluster.sweep import trial_command

ROOT = Path(__file__).resolve().parents[1]
SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


def representative(spec: dict):
    """One value the sweep may propose for a parameter (the first listed, the fixed one, or a range's lower end)."""
    if "values" in spec:
        return spec["values"][0]
    if "value" in spec:
        return spec["value"]
    low = spec["min"]
    return int(low) if spec.get("distribution", "").startswith(("int_", "q_")) and isinstance(low, int) else low


def lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        assert isinstance(node, dict) and part in node, f"{dotted}: no `{part}` in the resolved config"
        node = node[part]
    return node


def test_sweep_files_exist_for_the_methods_on_main():
    assert {p.stem for p in SWEEPS} >= {"binary", "laanet", "anti_spoofing"}


@pytest.mark.parametrize("sweep_file", SWEEPS, ids=lambda p: p.stem)
def test_every_swept_key_is_a_cli_key_of_its_config(sweep_file, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the command's config paths are relative to the repository
    config = yaml.safe_load(sweep_file.read_text())
    assert config["metric"]["name"] == "val/video/auc" and config["metric"]["goal"] == "maximize"
    values = {key: representative(spec) for key, spec in config["parameters"].items()}
    words = trial_command(config["command"], values, config.get("program"))
    assert words[:4] == [sys.executable, "-m", "lightning_dfd", "fit"], f"{sweep_file.name}: command must run fit"
    configs = [words[i + 1] for i, w in enumerate(words) if w == "--config"]
    assert configs and all((ROOT / c).is_file() for c in configs), f"{sweep_file.name}: missing config {configs}"
    with pytest.raises(SystemExit) as info:
        main(words[3:] + ["--print_config"])
    assert info.value.code == 0, f"{sweep_file.name}: {capsys.readouterr().err}"
    printed = yaml.safe_load(capsys.readouterr().out)
    for key, value in values.items():
        assert lookup(printed, key) == pytest.approx(value), f"{sweep_file.name}: {key}"


def test_command_macros_expand_like_the_wandb_agent():
    command = ["${env}", "python", "-m", "lightning_dfd", "fit", "--config", "c.yaml", "${args}"]
    words = trial_command(command, {"model.init_args.lr": 1e-4, "data.init_args.modalities": ["rgb", "depth"],
                                    "model.init_args.backbone": "resnet18"})
    assert words == [sys.executable, "-m", "lightning_dfd", "fit", "--config", "c.yaml", "--model.init_args.lr=0.0001",
                     '--data.init_args.modalities=["rgb", "depth"]', "--model.init_args.backbone=resnet18"]
    assert trial_command(["${program}", "${args_no_hyphens}"], {"a": 1}, program="p") == ["p", "a=1"]


@pytest.mark.slow
def test_offline_sweep_runs_three_trials_and_writes_the_table(twins, tmp_path, monkeypatch):
    from lightning_dfd.commands import run_extra_command

    monkeypatch.chdir(ROOT)
    cache = twins["ffpp"][1]
    run_extra_command("sweep", [str(ROOT / "sweeps" / "binary.yaml"), "--count", "3", "--offline",
                                "--out", str(tmp_path), "--",
                                "--data.init_args.path", str(cache), "--data.init_args.image_size", "32",
                                "--data.init_args.batch_size", "8", "--data.init_args.num_workers", "0",
                                "--model.init_args.backbone", "resnet10t", "--trainer.max_epochs", "1",
                                "--trainer.limit_train_batches", "2",
                                "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
                                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    folder = tmp_path / "binary"
    with (folder / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    spec = yaml.safe_load((ROOT / "sweeps" / "binary.yaml").read_text())["parameters"]
    keys = sorted(spec)
    grid = list(itertools.product(*(spec[k]["values"] for k in keys)))[:3]  # W&B grid: sorted keys, last fastest
    assert [r["state"] for r in rows] == ["finished"] * 3, [r.get("root_dir") for r in rows]
    for row, point in zip(rows, grid):
        assert tuple(float(row[k]) for k in keys) == pytest.approx(point)
        auc = float(row["val/video/auc"])
        assert 0.0 <= auc <= 1.0 and not math.isnan(auc)
        # the table's metric is what the trial's checkpoint monitor saw (val/video/auc after its one epoch)
        last = torch.load(Path(row["root_dir"]) / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
        (monitor,) = [state for name, state in last["callbacks"].items() if "BestAndLastCheckpoint" in name]
        assert float(monitor["best_model_score"]) == pytest.approx(auc, abs=1e-6)
        trained = last["hyper_parameters"]
        assert trained["drop_rate"] == pytest.approx(float(row["model.init_args.drop_rate"]))
    png = folder / "results.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
@pytest.mark.slurm
def test_offline_sweep_runs_its_trials_as_slurm_jobs(twins, tmp_path, monkeypatch):
    from lightning_dfd.commands import run_extra_command
    from tests.test_slurm import cluster_unavailable

    reason = cluster_unavailable()
    if reason:
        pytest.skip(reason)
    monkeypatch.chdir(ROOT)
    run_extra_command("sweep", [str(ROOT / "sweeps" / "binary.yaml"), "--count", "1", "--offline", "--slurm",
                                "--cpus-per-task", "1", "--time-limit", "00:10:00", "--out", str(tmp_path), "--",
                                "--data.init_args.path", str(twins["ffpp"][1]), "--data.init_args.image_size", "32",
                                "--data.init_args.batch_size", "8", "--model.init_args.backbone", "resnet10t",
                                "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
                                "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"])
    with (tmp_path / "binary" / "results.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["state"] == "finished"
    assert list((tmp_path / "binary").glob("sweep-binary-000-*.out"))  # it ran as a SLURM job
    last = torch.load(Path(row["root_dir"]) / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    (monitor,) = [state for name, state in last["callbacks"].items() if "BestAndLastCheckpoint" in name]
    assert float(monitor["best_model_score"]) == pytest.approx(float(row["val/video/auc"]), abs=1e-6)
