"""The LightningCLI entry point: configs, clear errors for bad input, extra subcommands."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from lightning_dfd.cli import EXTRA_COMMANDS, build_cli, main
from lightning_dfd.methods.binary import BinaryClassifier
from lightning_dfd.models.backbones import PretrainedWeightsError

TOY = ["--model", "lightning_dfd.methods.binary.BinaryClassifier", "--model.backbone", "resnet18",
       "--data", "tests.helpers.toy_data.ToyFaceDataModule", "--trainer.accelerator", "cpu",
       "--trainer.logger", "false", "--trainer.enable_progress_bar", "false"]


def test_subclass_mode_instantiates_from_class_path(tmp_path):
    cli = build_cli(["--trainer.default_root_dir", str(tmp_path), *TOY, "--model.drop_rate", "0.1",
                     "--model.scoring.aggregation", "vote"], run=False)
    assert isinstance(cli.model, BinaryClassifier)
    assert cli.model.scoring.aggregation == "vote"
    assert cli.model.hparams["drop_rate"] == 0.1
    assert type(cli.datamodule).__name__ == "ToyFaceDataModule"
    # best-by-video-AUC and last checkpoints, in a fixed directory so `--ckpt_path last` finds them
    ckpt = cli.trainer.checkpoint_callback
    assert ckpt.monitor == "val/video/auc" and ckpt.mode == "max" and ckpt.save_last
    assert ckpt.dirpath == str(tmp_path / "checkpoints")


def test_print_config_round_trips(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TOY, "--print_config"])
    assert exit_info.value.code == 0
    config = yaml.safe_load(capsys.readouterr().out)
    assert config["model"]["class_path"] == "lightning_dfd.methods.binary.BinaryClassifier"
    assert config["model"]["init_args"]["backbone"] == "resnet18"
    assert config["checkpoint"]["monitor"] == "val/video/auc"
    # the printed config is itself a valid config
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(path), "--trainer.fast_dev_run", "true",
                "--trainer.default_root_dir", str(tmp_path)])
    assert isinstance(cli.model, BinaryClassifier)
    assert cli.trainer.state.finished


@pytest.mark.parametrize(
    "bad_args, expected",
    [
        (["--model.no_such_key", "1"], "no_such_key"),
        (["--model.drop_rate", "lots"], "drop_rate"),
        (["--model", "lightning_dfd.methods.nope.Missing"], "lightning_dfd.methods.nope.Missing"),
        (["--trainer.max_epochs", "three"], "max_epochs"),
    ],
    ids=["unknown-key", "wrong-type", "missing-class-path", "wrong-trainer-type"],
)
def test_bad_config_gives_clear_error(bad_args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli([*TOY, *bad_args], run=False)
    assert exit_info.value.code != 0
    assert expected in capsys.readouterr().err


def test_unknown_key_in_yaml_is_rejected(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"class_path": "lightning_dfd.methods.binary.BinaryClassifier",
                                              "init_args": {"backbone": "resnet18", "bakbone_typo": 3}}}))
    with pytest.raises(SystemExit):
        build_cli(["--config", str(path), "--data", "tests.helpers.toy_data.ToyFaceDataModule"], run=False)
    assert "bakbone_typo" in capsys.readouterr().err


def test_unavailable_pretrained_weights_fail_before_training(tmp_path):
    # jsonargparse re-raises instantiation errors as ValueError carrying our message: the fix is named either way
    with pytest.raises((PretrainedWeightsError, ValueError), match="pretrained: false"):
        build_cli([*TOY, "--model.pretrained", "true"], run=False)
    with pytest.raises((PretrainedWeightsError, ValueError), match="missing.safetensors not found"):
        build_cli([*TOY, "--model.pretrained", str(tmp_path / "missing.safetensors")], run=False)
    with pytest.raises(PretrainedWeightsError, match="pretrained: false"):
        BinaryClassifier(backbone="resnet18", pretrained=True)


def test_local_weights_file_is_loaded(tmp_path):
    import torch

    reference = BinaryClassifier(backbone="resnet18", pretrained=False)
    weights = tmp_path / "resnet18.pth"
    state = {k: torch.full_like(v, 0.25) if v.is_floating_point() else v
             for k, v in reference.net.state_dict().items() if not k.startswith("fc.")}
    torch.save(state, weights)
    model = BinaryClassifier(backbone="resnet18", pretrained=str(weights))
    assert torch.all(model.net.conv1.weight == 0.25)


def test_extra_subcommands_are_registered_and_have_help():
    assert {"synth", "preprocess", "slurm", "sweep", "demo", "preview-transforms"} <= set(EXTRA_COMMANDS)
    out = subprocess.run([sys.executable, "-m", "lightning_dfd", "--help"], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0
    assert "extra subcommands" in out.stdout and "fit" in out.stdout


def test_extra_subcommands_do_not_import_lightning():
    code = ("import sys\nimport lightning_dfd.__main__ as entry\nsys.argv = ['lightning_dfd', 'preprocess', '--help']\n"
            "try:\n    entry.run()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'lightning.pytorch' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "--dataset" in out.stdout
    assert "LOADED False False" in out.stdout
