"""Resume: 2 epochs, stop, resume from last.ckpt for 1 more == 3 straight epochs (CPU, deterministic)."""

from __future__ import annotations

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
