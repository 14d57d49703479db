"""Outputs land where the user asked: loggers under --trainer.default_root_dir, a resumed run continues its CSV
version and W&B run, predict opens no logger."""

from __future__ import annotations

import csv

import pytest
import yaml

from lightning_dfd.cli import main

pytest.importorskip("wandb")


def logged_epochs(metrics_csv) -> set[int]:
    with open(metrics_csv, newline="") as handle:
        return {int(float(row["epoch"])) for row in csv.DictReader(handle) if row.get("epoch")}


def test_loggers_follow_root_resume_continues_them_and_predict_opens_none(tmp_path, monkeypatch):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    monkeypatch.setenv("WANDB_MODE", "offline")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    config = cwd / "config.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"logger": [  # the YAML's relative save_dir, as conf/ has them
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": "outputs/x", "name": "csv"}},
        {"class_path": "lightning.pytorch.loggers.WandbLogger",
         "init_args": {"project": "lightning-dfd-test", "save_dir": "outputs/x"}}]}}))
    root = tmp_path / "run"
    args = ["--config", str(config), "--model", "BinaryClassifier", "--model.backbone", "resnet10t",
            "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--data.videos", "4", "--data.frames", "2",
            "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1", "--trainer.accelerator", "cpu",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]

    first = main(["fit", *args, "--trainer.max_epochs", "1"])
    run_id = next(lg for lg in first.trainer.loggers if isinstance(lg, WandbLogger)).version
    wandb.finish()
    assert not (cwd / "outputs").exists()  # nothing in the current directory
    metrics = root / "csv" / "version_0" / "metrics.csv"
    assert metrics.is_file() and logged_epochs(metrics) == {0}
    assert [p.name.rsplit("-", 1)[-1] for p in (root / "wandb").glob("offline-run-*")] == [run_id]

    resumed = main(["fit", *args, "--trainer.max_epochs", "2", "--ckpt_path", "last"])
    wandb.finish()
    assert resumed.trainer.current_epoch == 2
    assert [p.name for p in (root / "csv").iterdir()] == ["version_0"]  # same CSV version, no version_1
    assert logged_epochs(metrics) == {0, 1}  # the first epoch's rows kept, the second's appended
    assert next(lg for lg in resumed.trainer.loggers if isinstance(lg, WandbLogger)).version == run_id
    runs = sorted(p.name.rsplit("-", 1)[-1] for p in (root / "wandb").glob("offline-run-*"))
    assert runs == [run_id, run_id]  # the same W&B run, resumed (synced as one)

    predicted = main(["predict", *args, "--ckpt_path", str(root / "checkpoints" / "last.ckpt")])
    assert predicted.trainer.loggers == []
    assert len(list((root / "wandb").glob("offline-run-*"))) == 2  # predict opened no W&B run
    assert [p.name for p in (root / "csv").iterdir()] == ["version_0"]
    assert (root / "predictions.csv").is_file()
