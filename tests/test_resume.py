"""Resume: 2 epochs, stop, resume from last.ckpt for 1 more == 3 straight epochs (CPU, deterministic)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import seed_everything

from lightning_dfd.cli import main

ARGS = ["--model", "lightning_dfd.methods.binary.BinaryClassifier", "--model.backbone", "resnet10t",
        "--model.drop_rate", "0.2",  # dropout draws random numbers: resume must still match exactly
        "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--data.videos", "4", "--data.frames", "2", "--data.size", "24",
        "--trainer.accelerator", "cpu", "--trainer.deterministic", "true", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--seed_everything", "7"]


def _fit(root, epochs, *extra):
    seed_everything(7)
    return main(["fit", *ARGS, "--trainer.default_root_dir", str(root), "--trainer.max_epochs", str(epochs),
                 *extra])


def test_resume_from_last_matches_straight_run(tmp_path):
    straight = _fit(tmp_path / "straight", 3)
    _fit(tmp_path / "resumed", 2)
    last = tmp_path / "resumed" / "checkpoints" / "last.ckpt"
    assert last.exists()
    state = torch.load(last, weights_only=True, map_location="cpu")
    assert state["epoch"] == 1 and state["global_step"] > 0
    resumed = _fit(tmp_path / "resumed", 3, "--ckpt_path", "last")

    assert resumed.trainer.global_step == straight.trainer.global_step
    assert resumed.trainer.current_epoch == straight.trainer.current_epoch == 3
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"parameter {name} differs after resume")
    opt_a = straight.trainer.optimizers[0].state_dict()["state"]
    opt_b = resumed.trainer.optimizers[0].state_dict()["state"]
    for key in opt_a:
        torch.testing.assert_close(opt_a[key]["exp_avg"], opt_b[key]["exp_avg"], rtol=0, atol=1e-6)


# ------------------------------------------------------------------ the shipped demo config, DataLoader workers
DEMO = Path(__file__).resolve().parents[1] / "conf" / "demo" / "binary_ffpp_twin.yaml"


def _demo_fit(cache, root, *extra):
    """``fit --config conf/demo/binary_ffpp_twin.yaml`` on the tiny FF++ twin with 2 workers, 2 epochs of 7 steps;
    per-step losses go to ``root/losses.jsonl``."""
    seed_everything(0)
    return main(["fit", "--config", str(DEMO), "--data.init_args.path", str(cache),
                 "--data.init_args.num_workers", "2", "--data.init_args.batch_size", "4",
                 "--data.init_args.image_size", "32",  # the twin's 64 px crops, smaller: seconds, not minutes
                 "--trainer.max_epochs", "2", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(root),
                 "--checkpoint.save_on_exception", "true",
                 "--trainer.callbacks+=tests.helpers.resume_callbacks.LossRecorder",
                 "--trainer.callbacks.path", str(root / "losses.jsonl"), *extra])


def _losses(root) -> dict[int, float]:
    lines = (root / "losses.jsonl").read_text().splitlines()
    return {row["step"]: row["loss"] for row in map(json.loads, lines)}


def test_demo_config_with_workers_resumes_mid_epoch_exactly(tmp_path, twins):
    """SIGTERM mid-epoch 2 (what a cluster sends before it kills a job): Lightning stops after the batch and, with
    ``--checkpoint.save_on_exception true``, writes last.ckpt; ``--ckpt_path last`` must then replay the straight
    run's remaining steps (same samples, same augmentation draws from fresh workers) and end on its metrics."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    _, cache = twins["ffpp"]
    straight = _demo_fit(cache, tmp_path / "straight")
    with pytest.raises(SIGTERMException):
        _demo_fit(cache, tmp_path / "resumed", "--trainer.callbacks+=tests.helpers.resume_callbacks.SigtermAtStep",
                  "--trainer.callbacks.step", "10")
    state = torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert (state["epoch"], state["global_step"]) == (1, 10)  # mid-epoch: 3 of the 7 steps of epoch 2 done
    resumed = _demo_fit(cache, tmp_path / "resumed", "--ckpt_path", "last")

    expected, got = _losses(tmp_path / "straight"), _losses(tmp_path / "resumed")
    assert sorted(expected) == sorted(got) == list(range(1, 15))
    for step in range(1, 15):
        assert got[step] == pytest.approx(expected[step], abs=1e-6), f"training loss of step {step} differs"
    # the final validation metrics (frame and video level); the epoch mean of the training loss is not compared:
    # Lightning does not checkpoint its running epoch aggregates, so a resumed epoch averages only its own steps
    final = {k: v for k, v in straight.trainer.callback_metrics.items() if k.startswith("val/")}
    final_resumed = {k: v for k, v in resumed.trainer.callback_metrics.items() if k.startswith("val/")}
    assert "val/video/auc" in final and set(final) == set(final_resumed)
    for key, value in final.items():
        torch.testing.assert_close(final_resumed[key], value, rtol=0, atol=1e-6, equal_nan=True, msg=f"{key} differs")
