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
        "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--data.videos", "4", "--data.frames", "2",
        "--data.size", "24",
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


@pytest.mark.slow
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


# ------------------------------------------------------------------ the training loader's position and seeds
def _flip_loader(root, workers):
    from lightning_dfd.datamodules import FaceForgeryDataModule

    dm = FaceForgeryDataModule(str(root), batch_size=2, num_workers=workers, image_size=16, frames_per_video=None,
                               seed=3, train_transforms=[{"class_path": "GaussNoise",
                                                          "init_args": {"std_range": [0.2, 0.2], "p": 1.0}}])
    dm.setup("fit")
    return dm.train_dataloader()


def _batches(loader, epoch, count=None):
    loader.sampler.set_epoch(epoch)
    out = []
    for batch in loader:
        out.append((batch["video_id"], batch["frame_index"].tolist(), batch["image"]))
        if count is not None and len(out) == count:
            break
    return out


def _same(a, b):
    return len(a) == len(b) and all(x[:2] == y[:2] and torch.equal(x[2], y[2]) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def noise_manifest(tmp_path_factory):
    from tests.helpers.face_manifests import build_manifest

    root = tmp_path_factory.mktemp("noise")
    videos = [{"dataset": "x", "video_id": f"v{i}", "label": i % 2, "method": "m", "split": "train", "frames": 3}
              for i in range(4)]
    build_manifest(root, videos, fill=lambda video, k: (128, 128, 128))  # identical pixels: only the noise differs
    return root


def test_loader_state_resumes_mid_epoch_with_the_same_samples_and_draws(noise_manifest):
    straight = _batches(_flip_loader(noise_manifest, 2), epoch=1)
    assert len(straight) == 6
    first = _flip_loader(noise_manifest, 2)
    assert _same(_batches(first, epoch=1, count=2), straight[:2])
    state = first.state_dict()
    assert state == {"epoch": 1, "batches_served": 2}
    fresh = _flip_loader(noise_manifest, 2)  # a new process: new loader, new workers
    fresh.load_state_dict(state)
    rest = [(b["video_id"], b["frame_index"].tolist(), b["image"]) for b in fresh]
    assert _same(rest, straight[2:])
    assert fresh.state_dict() == {"epoch": 1, "batches_served": 6}
    assert _same(_batches(fresh, epoch=1), straight)  # the position applies once: the next pass is whole


def test_sample_draws_do_not_depend_on_the_workers(noise_manifest):
    """Per-sample seeds: 0 and 2 workers give the same batches; epochs differ; every sample draws its own noise."""
    inline = _batches(_flip_loader(noise_manifest, 0), epoch=0)
    assert _same(inline, _batches(_flip_loader(noise_manifest, 2), epoch=0))
    assert not _same(inline, _batches(_flip_loader(noise_manifest, 0), epoch=1))
    images = torch.cat([image for _, _, image in inline])
    assert len({tuple(image.flatten()[:32].tolist()) for image in images}) == len(images) == 12


def test_epoch_set_after_the_iterator_is_requested_is_honoured(noise_manifest):
    """On resume Lightning calls ``iter(loader)`` before ``set_epoch``; the workers must still draw that epoch."""
    expected = _batches(_flip_loader(noise_manifest, 2), epoch=1)
    loader = _flip_loader(noise_manifest, 2)
    iterator = iter(loader)
    loader.sampler.set_epoch(1)
    got = [(b["video_id"], b["frame_index"].tolist(), b["image"]) for b in iterator]
    assert _same(got, expected)


# ------------------------------------------------------------------ issue 17: sanity check, stale last.ckpt
def test_sanity_check_draws_do_not_shift_the_resumed_run(tmp_path, monkeypatch):
    """A validation that draws random numbers (``DrawInValidation``: MC dropout, random test-time augmentation)
    runs as sanity check before the resumed epoch but not at that point of the straight run: the sanity check must
    leave the generators as it found them, or the resumed run's dropout masks shift.

    Lightning 2.6 wraps the sanity check in ``isolate_rng``; it is switched off here so that the test checks the
    project's own guarantee (``RandomStateCheckpoint``), which must not hang on a Lightning internal."""
    import contextlib

    import lightning.pytorch.trainer.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "isolate_rng", contextlib.nullcontext)
    draw = ["--trainer.callbacks+=tests.helpers.resume_callbacks.DrawInValidation"]
    straight = _fit(tmp_path / "straight", 2, *draw)
    _fit(tmp_path / "resumed", 1, *draw)
    resumed = _fit(tmp_path / "resumed", 2, "--ckpt_path", "last", *draw)
    for (name, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=f"parameter {name} differs after resume")


def test_last_checkpoint_is_the_latest_epoch_even_without_a_new_best(tmp_path):
    """``--ckpt_path last`` must resume from the last finished epoch, not from the last *best* one: here the
    monitored score only gets worse after epoch 0."""
    _fit(tmp_path, 3, "--trainer.callbacks+=tests.helpers.resume_callbacks.WorseningScore",
         "--checkpoint.monitor", "worsening", "--checkpoint.mode", "max")
    checkpoints = tmp_path / "checkpoints"
    best = [p for p in checkpoints.glob("*.ckpt") if p.name != "last.ckpt"]
    assert len(best) == 1 and torch.load(best[0], weights_only=True, map_location="cpu")["epoch"] == 0
    last = torch.load(checkpoints / "last.ckpt", weights_only=True, map_location="cpu")
    assert last["epoch"] == 2
    assert last["global_step"] == 3 * torch.load(best[0], weights_only=True, map_location="cpu")["global_step"]
