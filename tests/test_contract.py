"""The method contract (DetectorModule), the batch contract (lightning_dfd.batch), the CLI's links, and the
checkpoint's inference settings (predict / test preprocess exactly as training did).

A method defined here, in a few lines, runs through fit / test / predict via the CLI without touching any shared
file: that is the promise of README "Adding a method".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_dfd import batch as keys
from lightning_dfd.batch import EvalStepOutput
from lightning_dfd.cli import main
from lightning_dfd.methods.base import CHECKPOINT_SETTINGS_KEY, DetectorModule
from lightning_dfd.methods.binary import BinaryClassifier
from lightning_dfd.methods.laanet import LAANetDetector
from lightning_dfd.wiring import CheckpointSettingsError
from tests.helpers.face_manifests import build_manifest, ffpp_videos
from tests.helpers.toy_data import ToyFaceDataModule

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.enable_progress_bar", "false",
         "--trainer.enable_model_summary", "false"]


class TinyMethod(DetectorModule):
    """The smallest method: one convolution, global pooling, a linear logit, BCE (no in_chans, no pretrained).

    Args:
        width: channels of the convolution.
    """

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Conv2d(3, width, 3, padding=1)
        self.fc = nn.Linear(width, 1)

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"logit": self.fc(self.conv(inputs).mean(dim=(2, 3))).reshape(-1)}

    def compute_loss(self, outputs, batch):
        return {"loss": F.binary_cross_entropy_with_logits(outputs["logit"], batch[keys.LABEL].float())}


class NeedsHeatmap(TinyMethod):
    """A method whose loss reads the HEATMAP target (declared in loss_targets)."""

    loss_targets = (keys.HEATMAP,)

    def compute_loss(self, outputs, batch):
        loss = super().compute_loss(outputs, batch)["loss"] + batch[keys.HEATMAP].mean() * 0.0
        return {"loss": loss}


def batch_of(n: int = 4, size: int = 8, **extra) -> dict:
    return {keys.IMAGE: torch.randn(n, 3, size, size), keys.LABEL: torch.tensor([0, 1] * (n // 2)),
            keys.VIDEO_ID: [f"v{i}" for i in range(n)], **extra}


def trainer(tmp_path: Path, **kwargs) -> Trainer:
    return Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False, default_root_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def ffpp_manifest(tmp_path_factory) -> Path:
    """An FF++-like manifest (2 train, 1 val, 1 test target ids; 2 frames of 40x48 per video)."""
    root = tmp_path_factory.mktemp("ffpp_contract")
    build_manifest(root, ffpp_videos({"train": ["000", "001"], "val": ["002"], "test": ["003"]},
                                     methods=("Deepfakes",)), frames=2)
    return root


# ------------------------------------------------------------------------------------------ method contract
def test_validation_and_test_steps_return_the_public_eval_output():
    model = TinyMethod()
    out = model.validation_step(batch_of(), 0)
    assert isinstance(out, EvalStepOutput)
    assert out.fake_probability.shape == (4,) and bool(((out.fake_probability > 0) & (out.fake_probability < 1)).all())
    torch.testing.assert_close(out.fake_probability, torch.sigmoid(out.outputs["logit"]))
    assert set(out.losses) == {"loss"}
    test_out = model.test_step(batch_of(), 0)
    assert isinstance(test_out, EvalStepOutput) and test_out.losses is None  # no loss at test


def test_declared_loss_targets_decide_the_validation_loss_and_guard_training(tmp_path):
    model = NeedsHeatmap()
    without = model.validation_step(batch_of(), 0)
    assert without.losses is None and without.fake_probability.shape == (4,)  # scored, no loss, no error
    with_targets = model.validation_step(batch_of(**{keys.HEATMAP: torch.zeros(4, 1, 2, 2)}), 0)
    assert set(with_targets.losses) == {"loss"}
    unlabeled = batch_of(**{keys.HEATMAP: torch.zeros(4, 1, 2, 2)})
    unlabeled[keys.LABEL] = torch.full((4,), keys.UNKNOWN_LABEL)
    assert model.validation_step(unlabeled, 0).losses is None
    with pytest.raises(ValueError, match=r"needs batch keys \['heatmap'\].*targets_transform"):
        trainer(tmp_path, fast_dev_run=1).fit(model, train_dataloaders=DataLoader([batch_of()], batch_size=None))


def test_loss_targets_must_be_batch_keys():
    with pytest.raises(TypeError, match="heat_map"):
        type("Typo", (TinyMethod,), {"loss_targets": ("heat_map",)})


def test_laanet_declares_the_targets_of_its_enabled_branches():
    tiny = {"backbone": "mobilenetv3_small_050", "head_channels": 8, "consistency_dim": 8}
    assert LAANetDetector(**tiny).loss_targets == (keys.HEATMAP, keys.CONSISTENCY)
    assert LAANetDetector(**tiny, use_consistency=False).loss_targets == (keys.HEATMAP,)
    assert LAANetDetector(**tiny, use_heatmap=False, use_consistency=False).loss_targets == ()
    assert LAANetDetector(**tiny, heatmap_stride=4).target_map_size(64) == 16


@pytest.mark.parametrize("method", ["binary", "laanet_sam"])  # LAA-Net with Adam runs the base's training_step
def test_every_method_takes_its_input_through_batch_inputs(tmp_path, monkeypatch, method):
    """A method that reads batch["image"] itself would miss CLIP batches and any change of the contract."""
    tiny = {"backbone": "mobilenetv3_small_050", "head_channels": 8, "consistency_dim": 8}
    model = {"binary": lambda: BinaryClassifier(backbone="resnet10t"),
             "laanet_sam": lambda: LAANetDetector(**tiny)}[method]()
    seen = []
    original = DetectorModule.batch_inputs

    def recording(batch):
        seen.append(1)
        return original(batch)

    monkeypatch.setattr(DetectorModule, "batch_inputs", staticmethod(recording))
    batch = batch_of(size=32, **{keys.HEATMAP: torch.zeros(4, 1, 8, 8), keys.CONSISTENCY: torch.ones(4, 1, 8, 8)})
    trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, DataLoader([batch], batch_size=None))
    assert seen, f"{type(model).__name__}.training_step must take its input through batch_inputs"
    seen.clear()
    model.trainer = None  # a bare call: no loop to log into
    model.validation_step(batch, 0)
    assert seen, "validation scoring must take its input through batch_inputs"


def test_pos_weight_hand_off_is_the_base_s_for_any_method(tmp_path):
    class Balanced(ToyFaceDataModule):
        pos_weight = 0.25

    model = TinyMethod()
    assert model.pos_weight is None and model.pos_weight_setting == "auto"
    trainer(tmp_path, max_steps=1, limit_val_batches=0).fit(model, datamodule=Balanced(videos=2, frames=2, size=8))
    assert model.pos_weight == 0.25


def test_fit_start_refuses_data_the_method_cannot_use(tmp_path):
    class NineChannels(ToyFaceDataModule):
        num_channels = 9

    model = BinaryClassifier(backbone="resnet10t", in_chans=3)
    with pytest.raises(ValueError, match=r"model.init_args.in_chans = 3 but the data has 9 channels"):
        trainer(tmp_path, max_steps=1).fit(model, datamodule=NineChannels(videos=2, frames=2, size=32))

    class Targets(ToyFaceDataModule):
        image_size = 64
        target_map_size = 32

    tiny = {"backbone": "mobilenetv3_small_050", "head_channels": 8, "consistency_dim": 8, "heatmap_stride": 4}
    with pytest.raises(ValueError, match=r"32x32 target maps \(data.init_args.targets_transform\).*16x16.*"
                                         r"model.init_args.heatmap_stride = 4"):
        trainer(tmp_path, max_steps=1).fit(LAANetDetector(**tiny), datamodule=Targets(videos=2, frames=2, size=64))


# ------------------------------------------------------------------------------------------ CLI links
def test_links_carry_channels_class_balance_and_schedule_length(tmp_path):
    from lightning_dfd.cli import build_cli

    cli = build_cli(["--model", "lightning_dfd.methods.binary.BinaryClassifier", "--model.backbone", "resnet10t",
                     "--data", f"{__name__}.NineChannelToy", "--trainer.max_epochs", "7", "--trainer.logger", "false",
                     "--model.lr_scheduler", "lightning_dfd.optim.schedules.RampLinearDecayLR",
                     "--trainer.default_root_dir", str(tmp_path)], run=False)
    first_conv = next(m for m in cli.model.net.modules() if isinstance(m, nn.Conv2d))
    assert cli.model.hparams.in_chans == 9 and first_conv.in_channels == 9
    assert cli.model.pos_weight == 0.5
    assert cli.config.model.init_args.lr_scheduler.init_args.total_steps == 7


def test_links_skip_a_method_without_the_target_arguments(tmp_path):
    from lightning_dfd.cli import build_cli

    cli = build_cli(["--model", f"{__name__}.TinyMethod", "--data", f"{__name__}.NineChannelToy",
                     "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path)], run=False)
    assert isinstance(cli.model, TinyMethod)  # no in_chans, no pretrained, no pos_weight argument: links skipped
    assert cli.model.pos_weight_setting == "auto"  # the base still resolves the class balance at fit start


class NineChannelToy(ToyFaceDataModule):
    """Toy data that says it has 9 channels and a class balance of 0.5."""

    num_channels = 9
    pos_weight = 0.5


def test_a_method_defined_in_a_test_file_runs_fit_test_predict_through_the_cli(tmp_path, ffpp_manifest,
                                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = ["--model", f"{__name__}.TinyMethod", "--model.width", "3"]
    data = ["--data", "lightning_dfd.datamodules.FFPPDataModule", "--data.path", str(ffpp_manifest),
            "--data.methods", "[Deepfakes]", "--data.image_size", "16", "--data.batch_size", "4",
            "--data.num_workers", "0", "--data.frames_per_video", "2"]
    root = ["--trainer.default_root_dir", str(tmp_path), "--trainer.logger", "false", *QUIET]
    fit = main(["fit", *model, *data, *root, "--trainer.max_epochs", "1"])
    assert fit.trainer.state.finished and fit.trainer.global_step >= 1
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(ckpt, weights_only=True)
    assert checkpoint[CHECKPOINT_SETTINGS_KEY]["model_class"] == f"{__name__}.TinyMethod"
    assert checkpoint[CHECKPOINT_SETTINGS_KEY]["model_init_args"]["width"] == 3
    test = main(["test", *model, *data, *root, "--ckpt_path", str(ckpt)])
    assert "test/video/auc" in test.trainer.callback_metrics
    predict = main(["predict", *model, "--data", "lightning_dfd.datamodules.FaceFolderDataModule",
                    "--data.path", str(ffpp_manifest), "--data.num_workers", "0", *root, "--ckpt_path", str(ckpt)])
    assert predict.datamodule.image_size == 16  # from the checkpoint, not FaceFolderDataModule's default 224
    assert (tmp_path / "predictions.csv").read_text().count("\n") > 1


# ------------------------------------------------------------------------------------------ inference settings
@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory, ffpp_manifest) -> Path:
    """The demo config (BinaryClassifier, 96 px) trained for one step on the FF++-like manifest."""
    out = tmp_path_factory.mktemp("demo_run")
    main(["fit", "--config", str(ROOT / "conf/demo/binary_ffpp_twin.yaml"), "--data.init_args.path",
          str(ffpp_manifest), "--data.init_args.methods", "[Deepfakes]", "--data.init_args.batch_size", "4",
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1", "--trainer.logger", "false",
          "--trainer.default_root_dir", str(out), *QUIET])
    return out / "checkpoints" / "last.ckpt"


def predict_args(ckpt: Path, data_path: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--model", "lightning_dfd.methods.binary.BinaryClassifier", "--config",
            str(ROOT / "conf/predict/face_folder.yaml"), "--data.init_args.path", str(data_path),
            "--data.init_args.num_workers", "0", "--trainer.default_root_dir", str(out), "--trainer.logger", "false",
            "--ckpt_path", str(ckpt), *QUIET, *extra]


def test_predict_preprocesses_as_training_did(tmp_path, demo_checkpoint, ffpp_manifest):
    settings = torch.load(demo_checkpoint, weights_only=True)[CHECKPOINT_SETTINGS_KEY]
    assert settings["data"]["image_size"] == 96 and settings["data"]["modalities"] == ["rgb"]
    assert settings["data_class"] == "lightning_dfd.datamodules.ffpp.FFPPDataModule"
    cli = main(predict_args(demo_checkpoint, ffpp_manifest, tmp_path))
    assert cli.datamodule.image_size == 96
    assert cli.datamodule.dataset("predict")[0][keys.IMAGE].shape[-2:] == (96, 96)
    assert list(cli.datamodule.normalize_mean) == pytest.approx(settings["data"]["normalize_mean"])


def test_an_explicit_stale_image_size_is_refused_or_warned_about(tmp_path, demo_checkpoint, ffpp_manifest, capsys,
                                                                 monkeypatch):
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:  # a user error: one line on stderr, exit status 1
        main(predict_args(demo_checkpoint, ffpp_manifest, tmp_path, "--data.init_args.image_size", "224"))
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(r"data.init_args.image_size: trained with 96, the config sets 224.*"
                                       r"--override_checkpoint_settings true", err[0]), err
    monkeypatch.setenv("LIGHTNING_DFD_DEBUG", "1")  # --debug: the error itself is raised
    with pytest.raises(CheckpointSettingsError, match="trained with 96, the config sets 224"):
        main(predict_args(demo_checkpoint, ffpp_manifest, tmp_path, "--data.init_args.image_size", "224"))
    monkeypatch.delenv("LIGHTNING_DFD_DEBUG")
    with pytest.warns(UserWarning, match="WARNING.*trained with 96, the config sets 224"):
        cli = main(predict_args(demo_checkpoint, ffpp_manifest, tmp_path, "--data.init_args.image_size", "224",
                                "--override_checkpoint_settings", "true"))
    assert cli.datamodule.image_size == 224


def test_checkpoint_settings_fill_unset_values_and_refuse_what_the_data_class_fixes():
    from jsonargparse import Namespace

    from lightning_dfd.wiring import apply_data_settings

    def folder_config(**init_args) -> Namespace:
        return Namespace(data=Namespace(class_path="lightning_dfd.datamodules.FaceFolderDataModule",
                                        init_args=Namespace(image_size=224, resize_size=None, **init_args)),
                         override_checkpoint_settings=False)

    config = folder_config()
    apply_data_settings(config, Namespace(), {"image_size": 112, "resize_size": 125}, "casia.ckpt")
    assert config.data.init_args.image_size == 112 and config.data.init_args.resize_size == 125
    # a 9-channel CASIA-SURF model on an RGB-only DataModule: refused, whatever the config says
    with pytest.raises(CheckpointSettingsError, match=r"modalities: trained with \['rgb', 'depth', 'ir'\], "
                                                      r"FaceFolderDataModule serves \['rgb'\]"):
        apply_data_settings(folder_config(), Namespace(), {"modalities": ["rgb", "depth", "ir"]}, "casia.ckpt")
    # an explicit value equal to the checkpoint's is no mismatch
    explicit = Namespace()
    explicit["data.init_args.image_size"] = 112
    config = folder_config()
    config.data.init_args.image_size = 112
    apply_data_settings(config, explicit, {"image_size": 112}, "casia.ckpt")
    assert config.data.init_args.image_size == 112


def test_a_run_length_schedule_stepped_per_batch_is_refused(tmp_path):
    from lightning_dfd.optim.schedules import RampLinearDecayLR

    def schedule(optimizer):
        return RampLinearDecayLR(optimizer, total_steps=2)  # 2 epochs, as the CLI links from trainer.max_epochs

    batches = [batch_of() for _ in range(3)]
    per_batch = TinyMethod()
    per_batch.lr_scheduler_factory, per_batch.scheduler_interval = schedule, "step"
    with pytest.raises(ValueError, match=r"total_steps = 2 \(linked from trainer.max_epochs\).*6 steps.*"
                                         r"scheduler_interval: epoch"):
        trainer(tmp_path, max_epochs=2).fit(per_batch, DataLoader(batches, batch_size=None))
    per_epoch = TinyMethod()
    per_epoch.lr_scheduler_factory = schedule
    trainer(tmp_path, max_epochs=2).fit(per_epoch, DataLoader(batches, batch_size=None))
    assert per_epoch.trainer.state.finished
