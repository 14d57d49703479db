"""DetectorModule: scoring, video aggregation, per-type metrics, PNG reports, predict CSV, offline W&B."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

from lightning_dfd.batch import IMAGE
from lightning_dfd.callbacks.prediction_writer import VideoPredictionWriter
from lightning_dfd.methods.base import Scoring, group_names
from lightning_dfd.methods.binary import BinaryClassifier
from tests.helpers.toy_data import LogitIsImageMean, ToyFaceDataModule


FixedScores = LogitIsImageMean


def _batches():
    # 3 videos x 2 frames; logits chosen so the frame probabilities are sigmoid(l)
    logits = torch.tensor([-2.0, 0.5, 1.0, 3.0, -1.0, -0.5])
    images = logits.view(6, 1, 1, 1).expand(6, 3, 2, 2).clone()
    return [{"image": images, "label": torch.tensor([0, 0, 1, 1, 0, 0]),
             "video_id": ["v0", "v0", "v1", "v1", "v2", "v2"], "frame_index": torch.tensor([0, 1, 0, 1, 0, 1]),
             "method": ["real", "real", "Deepfakes", "Deepfakes", "real", "real"]}], torch.sigmoid(logits)


def _trainer(tmp_path, **kw):
    return Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   default_root_dir=tmp_path, enable_checkpointing=False, **kw)


@pytest.mark.parametrize("aggregation", ["mean", "vote", "max"])
def test_test_metrics_frame_and_video_level(tmp_path, aggregation):
    batches, probs = _batches()
    model = FixedScores(scoring=Scoring(aggregation=aggregation))
    results = _trainer(tmp_path).test(model, dataloaders=DataLoader(batches, batch_size=None), verbose=False)[0]
    target = np.array([0, 0, 1, 1, 0, 0])
    assert results["test/frame/auc"] == pytest.approx(roc_auc_score(target, probs.numpy()), abs=1e-6)
    p = probs.numpy().reshape(3, 2)
    video = {"mean": p.mean(1), "max": p.max(1), "vote": (p >= 0.5).mean(1)}[aggregation]
    assert results["test/video/auc"] == pytest.approx(roc_auc_score([0, 1, 0], video), abs=1e-6)
    # per-manipulation metrics: reals + that manipulation's fakes
    assert results["test/frame/auc/Deepfakes"] == pytest.approx(results["test/frame/auc"])
    # reports land in the log dir
    for name in ("test_roc.png", "test_score_histogram.png", "test_metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "test_roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "test_metrics.json").read_text())
    assert saved["test/video/auc"] == pytest.approx(results["test/video/auc"])


def test_log_weighted_precision_reported_when_asked(tmp_path):
    logits = torch.tensor([3.0, 0.0, 1.0, -1.0, -2.0, -3.0])  # two fakes, then four reals
    batch = {"image": logits.view(6, 1, 1, 1).expand(6, 3, 2, 2).clone(), "label": torch.tensor([1, 1, 0, 0, 0, 0]),
             "video_id": [f"v{i}" for i in range(6)]}
    model = FixedScores(scoring=Scoring(log_wp_recalls=(0.5, 1.0)))
    results = _trainer(tmp_path).test(model, dataloaders=DataLoader([batch], batch_size=None), verbose=False)[0]
    # recall 0.5: threshold at the top fake -> TP 1, FP 0 -> log(1 / (1 + 100 * 0)) = 0
    assert results["test/frame/log_wp@recall=0.5"] == pytest.approx(0.0)
    # recall 1: threshold at the second fake (logit 0) lets the real at logit 1 through -> wP = 2 / (2 + 100 * 1)
    assert results["test/frame/log_wp@recall=1"] == pytest.approx(np.log(2 / 102), abs=1e-6)
    assert results["test/video/log_wp@recall=1"] == pytest.approx(np.log(2 / 102), abs=1e-6)


def test_flip_tta_averages_with_flipped_input(tmp_path):
    class Asymmetric(FixedScores):
        def forward(self, images):  # depends on the left column only
            return {"logit": images[..., 0].flatten(1).mean(1)}

    model = Asymmetric(scoring=Scoring(flip_tta=True))
    images = torch.zeros(2, 3, 2, 2)
    images[0, ..., 0] = 2.0
    images[1, ..., 1] = 2.0
    _, probs, _ = model.score({IMAGE: images})
    expected = 0.5 * (torch.sigmoid(torch.tensor([2.0, 0.0])) + torch.sigmoid(torch.tensor([0.0, 2.0])))
    torch.testing.assert_close(probs, expected)


def test_group_names_from_method_and_attack_type():
    labels = torch.tensor([0, 1, 1])
    assert group_names({"method": ["real", "FaceSwap", "Deepfakes"]}, labels) == ["real", "FaceSwap", "Deepfakes"]
    assert group_names({"attack_type": torch.tensor([0, 4, 6])}, labels) == ["real", "attack_4", "attack_6"]
    assert group_names({}, labels) is None


def test_single_class_gives_nan_not_crash(tmp_path):
    batches, _ = _batches()
    only_real = [{**batches[0], "label": torch.zeros(6, dtype=torch.long),
                  "method": ["real"] * 6}]
    with pytest.warns(UserWarning):
        loader = DataLoader(only_real, batch_size=None)
        results = _trainer(tmp_path).test(FixedScores(), dataloaders=loader, verbose=False)[0]
    assert np.isnan(results["test/frame/auc"]) and np.isnan(results["test/video/auc"])
    assert results["test/frame/acc"] == pytest.approx(3 / 6)  # accuracy stays defined: 3 of 6 above 0.5


def test_predict_writes_one_row_per_video_including_failures(tmp_path):
    seed_everything(0)
    data = ToyFaceDataModule(videos=4, frames=3, size=32)
    writer = VideoPredictionWriter(output="preds.csv", print_table=False)
    model = BinaryClassifier(backbone="resnet18")
    _trainer(tmp_path, callbacks=[writer]).predict(model, datamodule=data, return_predictions=False)
    rows = list(csv.DictReader((tmp_path / "preds.csv").open()))
    assert [r["video"] for r in rows] == ["test/000", "test/001", "test/002", "test/003", "test/no_face_clip"]
    assert all(r["frames_used"] == "3" for r in rows[:4])
    assert [r["label_if_known"] for r in rows[:4]] == ["0", "1", "0", "1"]
    assert all(0.0 <= float(r["fake_probability"]) <= 1.0 for r in rows[:4])
    assert rows[4]["fake_probability"] == "" and rows[4]["frames_used"] == "0"
    assert "no face" in rows[4]["note"]


def test_binary_classifier_learns_toy_data(tmp_path):
    seed_everything(0)
    data = ToyFaceDataModule(videos=8, frames=4, size=32, batch_size=8)
    model = BinaryClassifier(backbone="resnet10t",
                             optimizer=lambda p: torch.optim.Adam(p, lr=1e-3))
    trainer = _trainer(tmp_path, max_epochs=6)
    trainer.fit(model, datamodule=data)
    results = trainer.test(model, datamodule=data, verbose=False)[0]
    assert results["test/frame/auc"] > 0.75  # 0.90 measured; chance is 0.5


def test_wandb_logger_runs_offline_without_network(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from lightning_dfd.cli import configure_wandb_mode

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert configure_wandb_mode() == "offline"
    batches, _ = _batches()
    loggers = [CSVLogger(tmp_path, name="csv"), WandbLogger(project="lightning-dfd-test", save_dir=str(tmp_path))]
    trainer = Trainer(accelerator="cpu", logger=loggers, max_epochs=1, enable_progress_bar=False,
                      enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(FixedScores(), train_dataloaders=DataLoader(batches, batch_size=None),
                val_dataloaders=DataLoader(batches, batch_size=None))
    import wandb

    wandb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert runs, "the offline run must land under save_dir/wandb"
    assert list((tmp_path / "csv").rglob("metrics.csv"))


def test_auto_pos_weight_comes_from_the_datamodule(tmp_path):
    class Balanced(ToyFaceDataModule):
        pos_weight = 0.25

    model = BinaryClassifier(backbone="resnet10t")
    assert model.pos_weight is None
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=Balanced(videos=2, frames=2, size=32))
    assert model.pos_weight == 0.25
    logits = torch.tensor([0.3, -0.2])
    batch = {"label": torch.tensor([1, 0])}
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, batch["label"].float(),
                                                                    pos_weight=torch.tensor(0.25))
    torch.testing.assert_close(model.compute_loss({"logit": logits}, batch)["loss"], expected)
    fixed = BinaryClassifier(backbone="resnet10t", pos_weight=2.0)
    _trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(fixed, datamodule=Balanced(videos=2, frames=2, size=32))
    assert fixed.pos_weight == 2.0
