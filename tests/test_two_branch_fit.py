"""Two-branch method under Lightning: the centre c (computed once, frozen, checkpointed, not recomputed on resume),
the plateau scheduler fed with the logged validation loss, the DataModule's video rebalancing."""

from __future__ import annotations

import copy

import pytest
import torch
from lightning.pytorch import Trainer

from lightning_dfd.datamodules import FFPPDataModule
from lightning_dfd.datamodules.collate import collate_samples
from lightning_dfd.methods.two_branch import TwoBranchDetector
from lightning_dfd.optim.plateau import LimitedReduceLROnPlateau
from tests.helpers.face_manifests import build_manifest, ffpp_videos

TINY = {"growth_rate": 8, "block_config": [1, 1, 1, 1]}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_branch")
    build_manifest(root, ffpp_videos({"train": ["000", "001"], "val": ["002"], "test": ["003"]},
                                     methods=("Deepfakes", "Face2Face")), frames=4, size=(32, 32))
    return root


def datamodule(path, **kwargs) -> FFPPDataModule:
    args = dict(methods=("Deepfakes", "Face2Face"), batch_size=4, num_workers=0, image_size=32, mode="clip",
                clip_length=2, clip_stride=1, frames_per_video=1, pin_memory=False)
    return FFPPDataModule(str(path), **{**args, **kwargs})


def trainer(root, epochs: int) -> Trainer:
    return Trainer(default_root_dir=root, max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                   limit_train_batches=1, limit_val_batches=1)


def method() -> TwoBranchDetector:
    torch.manual_seed(0)
    # patience 0 and an unreachable improvement threshold: every epoch is a plateau -> LR / 10 per epoch
    return TwoBranchDetector(backbone_args=TINY, optimizer=lambda p: torch.optim.Adam(p, lr=1e-3),
                             lr_scheduler=lambda opt: LimitedReduceLROnPlateau(opt, patience=0, threshold=1e9))


def test_centre_is_the_mean_natural_embedding_of_the_untrained_net_and_survives_resume(manifest, tmp_path,
                                                                                       monkeypatch):
    model, dm = method(), datamodule(manifest)
    untrained = copy.deepcopy(model.net).eval()
    fit = trainer(tmp_path, epochs=1)
    fit.fit(model, datamodule=dm)
    # independent: every natural training clip through the untrained net, eval mode, averaged
    dataset = dm.dataset("train")
    natural = [dataset[i] for i in range(len(dataset)) if dataset.unit_labels[i] == 0]
    assert len(natural) == 2 * 3  # 2 real videos x 3 windows of 2 of their 4 frames
    with torch.no_grad():
        expected = untrained(collate_samples(natural)["clip"]).mean(dim=0)
    torch.testing.assert_close(model.center, expected, atol=1e-5, rtol=1e-5)
    assert bool(model.center_ready)
    # the validation loss is logged under the key the scheduler monitors, and the scheduler used it
    assert "val/loss" in fit.callback_metrics
    lrs = {g["name"]: g["lr"] for g in fit.optimizers[0].param_groups}
    assert lrs["lstm"] == pytest.approx(1e-4) and lrs["rgb_branch"] == pytest.approx(1e-3 / 16 / 10)

    ckpt = tmp_path / "one_epoch.ckpt"
    fit.save_checkpoint(ckpt)
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    torch.testing.assert_close(state["center"], expected, atol=1e-5, rtol=1e-5)
    assert bool(state["center_ready"])

    def no_recompute(self, datamodule):
        raise AssertionError("the centre was recomputed on resume")

    monkeypatch.setattr(TwoBranchDetector, "compute_center", no_recompute)
    resumed = method()  # fresh weights and a zero centre until the checkpoint is restored
    again = trainer(tmp_path, epochs=2)
    again.fit(resumed, datamodule=datamodule(manifest), ckpt_path=ckpt)
    assert again.current_epoch == 2
    torch.testing.assert_close(resumed.center, expected, atol=1e-5, rtol=1e-5)


def test_datamodule_video_factors_rebalance_the_training_epoch(manifest):
    factors = {"real": 2.0, "Deepfakes": 0.5, "Face2Face": 0.5}
    dm = datamodule(manifest, video_factors=factors, balance="loss_weights")
    dm.setup("fit")
    sampler = dm.train_dataloader().sampler
    drawn = [dm.dataset("train").unit_video_ids[int(i)] for i in sampler]
    # 2 real videos x 2 + half of the 2 videos of each manipulation = 4 real : 2 fake clips per epoch
    assert sorted(v.split("/")[0] for v in drawn) == ["Deepfakes", "Face2Face"] + ["youtube"] * 4
    assert dm.pos_weight == pytest.approx(4 / 2)
    with pytest.raises(ValueError, match="video_factors and balance='sampler'"):
        datamodule(manifest, video_factors=factors, balance="sampler")
