"""DefakeHopModule inside Lightning (seed 000): fit without gradients, checkpoints, evaluation with frame windows."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_dfd import batch as keys
from lightning_dfd.errors import UserError
from lightning_dfd.methods.base import Scoring
from lightning_dfd.methods.defakehop import DefakeHopModule
from tests.helpers.toy_data import ToyFaceDataModule

SMALL = dict(max_channels=3, spatial_components=[0.9], channel_trees=20, final_trees=20, oof_folds=2, n_jobs=1,
             frame_offsets=[-1, 0, 1], max_fit_windows=5000)


def trainer(tmp_path, **kwargs) -> Trainer:
    return Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("defakehop")
    data = ToyFaceDataModule(videos=8, frames=4, size=64, batch_size=8)
    module = DefakeHopModule(**SMALL)
    checkpoint = ModelCheckpoint(dirpath=tmp / "ckpt", save_last=True)
    fit_trainer = trainer(tmp, callbacks=[checkpoint])
    fit_trainer.fit(module, datamodule=data)
    return module, data, fit_trainer, tmp / "ckpt" / "last.ckpt"


def test_fit_is_one_step_and_logs_its_loss(fitted):
    module, _, fit_trainer, ckpt = fitted
    assert module.model.fitted and fit_trainer.global_step == 1 and ckpt.exists()
    assert torch.isfinite(fit_trainer.callback_metrics["train/loss"])
    assert fit_trainer.callback_metrics["params/Total"] > 0
    assert module.configure_optimizers() is None
    assert not list(module.parameters())  # nothing learnt by gradients


def test_checkpoint_is_plain_tensors_and_round_trips(fitted, tmp_path):
    module, data, _, ckpt = fitted
    state = torch.load(ckpt, weights_only=True, map_location="cpu")  # raises on any pickled object
    blob = state["state_dict"]["model.channel_xgb.blob"]
    assert blob.dtype == torch.uint8 and bytes(blob[:1].tolist()) == b"{"  # XGBoost's UBJSON, not a pickle
    with zipfile.ZipFile(ckpt) as archive:
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"xgboost" not in pickled and b"numpy" not in pickled
    restored = DefakeHopModule(**SMALL)
    restored.load_state_dict(state["state_dict"])
    before = torch.cat([o["fake_probability"] for o in trainer(tmp_path).predict(module, datamodule=data)])
    after = torch.cat([o["fake_probability"] for o in trainer(tmp_path).predict(restored, datamodule=data)])
    assert torch.isfinite(before).all()
    assert torch.equal(before, after)


def test_evaluation_scores_each_frame_with_its_neighbours(fitted, tmp_path):
    """Predict (batches of 3 frames, so windows cross batches) = final XGBoost on [previous, current, next] frame
    features of the same video; differs from scoring frames alone (forward)."""
    module, data, _, _ = fitted
    data.batch_size = 3
    outputs = trainer(tmp_path).predict(module, datamodule=data)
    probs = torch.cat([o["fake_probability"] for o in outputs]).double().numpy()
    items = data.test_set.items
    images = torch.stack([i[keys.IMAGE] for i in items])
    crops = module.batch_inputs({keys.IMAGE: images})
    features = module.model.frame_features(crops)
    video = np.array([int(i[keys.VIDEO_ID].split("/")[1]) for i in items])
    frame = np.array([i[keys.FRAME_INDEX] for i in items])
    order = np.lexsort((frame, video))
    expected = np.empty(len(items))
    for v in np.unique(video):
        rows = order[video[order] == v]
        for pos, row in enumerate(rows):
            neighbours = rows[[max(pos - 1, 0), pos, min(pos + 1, len(rows) - 1)]]
            window = features[neighbours].reshape(1, -1)
            expected[row] = 1 / (1 + np.exp(-module.model.final_logit(window)[0]))
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    alone = torch.sigmoid(module(crops)["logit"]).numpy()
    assert not np.allclose(alone, expected)
    data.batch_size = 8


def test_test_run_reports_frame_and_video_metrics(fitted, tmp_path):
    module, data, _, _ = fitted
    metrics = trainer(tmp_path).test(module, datamodule=data, verbose=False)[0]
    assert 0.0 <= metrics["test/video/auc"] <= 1.0 and 0.0 <= metrics["test/frame/auc"] <= 1.0
    assert (tmp_path / "test_roc.png").exists()


def test_ddp_and_unfitted_use_are_refused():
    module = DefakeHopModule(**SMALL)
    module._trainer = SimpleNamespace(world_size=2)
    with pytest.raises(UserError, match="trainer.devices: 1"):
        module.setup("fit")
    with pytest.raises(UserError, match="not fitted"):
        module(torch.zeros(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="flip_tta"):
        DefakeHopModule(scoring=Scoring(flip_tta=True), **SMALL)


def test_subsampling_keeps_whole_videos_within_the_budget():
    video = np.array(["a"] * 3 + ["b"] * 2 + ["c"] * 4 + ["d"] * 1)
    module = DefakeHopModule(max_fit_frames=5, seed=3, **SMALL)
    rows = module.subsample(video)
    kept = set(video[rows])
    assert len(rows) <= 5 and all((video[rows] == v).sum() == (video == v).sum() for v in kept)  # whole videos
    np.testing.assert_array_equal(rows, DefakeHopModule(max_fit_frames=5, seed=3, **SMALL).subsample(video))
    np.testing.assert_array_equal(DefakeHopModule(max_fit_frames=None, **SMALL).subsample(video), np.arange(10))
