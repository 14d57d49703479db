"""W&B runs are named, grouped and tagged from the config and keep the best checkpoint as an artifact (offline)."""

from __future__ import annotations

import yaml

from lightning_dfd.cli import main


def wandb_run_args(tmp_path, monkeypatch) -> list[str]:
    """Offline W&B, a config named ``toy_binary.yaml`` whose only logger is a WandbLogger, a toy model and data."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "toy_binary.yaml"
    config.write_text(yaml.safe_dump({"trainer": {"logger": [
        {"class_path": "lightning.pytorch.loggers.WandbLogger", "init_args": {"project": "lightning-dfd-test"}}]}}))
    return ["--config", str(config), "--model", "BinaryClassifier", "--model.backbone", "resnet10t",
            "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--trainer.accelerator", "cpu",
            "--trainer.default_root_dir", str(tmp_path / "run")]


def test_wandb_run_labels_and_checkpoint_artifact(tmp_path, monkeypatch):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    cli = main(["fit", *wandb_run_args(tmp_path, monkeypatch), "--data.videos", "4", "--data.frames", "2",
                "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "1", "--trainer.max_epochs", "1",
                "--trainer.enable_progress_bar", "false"])
    logger = next(lg for lg in cli.trainer.loggers if isinstance(lg, WandbLogger))
    run = logger.experiment
    try:
        assert run.name == "toy_binary"  # the config file's name
        assert run.group == "BinaryClassifier"
        assert set(run.tags) == {"BinaryClassifier", "ToyFaceDataModule", "fit"}
        # the checkpoints went to W&B as a model artifact at the end of training, the best one among them
        best = cli.trainer.checkpoint_callback.best_model_path
        assert best and best in logger._logged_model_time
    finally:
        wandb.finish()


def test_wandb_log_model_false_keeps_checkpoints_out_of_wandb(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import WandbLogger

    from lightning_dfd.cli import build_cli

    common = wandb_run_args(tmp_path, monkeypatch)
    for flag, expected in ((), True), (("--wandb_log_model", "false"), False), (("--wandb_log_model", "all"), "all"):
        cli = build_cli([*common, *flag], run=False)  # no subcommand when not running
        logger = next(lg for lg in cli.trainer.loggers if isinstance(lg, WandbLogger))
        assert logger._log_model == expected, flag
