"""The LightningCLI entry point: configs, clear errors for bad input, extra subcommands."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
import yaml

from lightning_dfd.cli import EXTRA_COMMANDS, build_cli, main, read_checkpoint
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


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "bad_args, expected",
    [
        (["--model.no_such_key", "1"], "model.no_such_key: unknown key for BinaryClassifier"),
        (["--model.drop_rate", "lots"], "model.drop_rate: expected float, got lots"),
        (["--model", "lightning_dfd.methods.nope.Missing"], "cannot import class_path 'lightning_dfd.methods.nope"),
        (["--model", "NoSuchMethod"], "no class named 'NoSuchMethod'; known: "),  # the list holds every imported method
        (["--trainer.max_epochs", "three"], "trainer.max_epochs: expected int, got three"),
        (["--model.scoring.aggregation", "median"], "model.scoring.aggregation: expected one of"),
        (["--config", "/no/such/config.yaml"], "config: File does not exist: '/no/such/config.yaml'"),
    ],
    ids=["unknown-key", "wrong-type", "missing-class-path", "unknown-short-name", "wrong-trainer-type",
         "nested-literal", "missing-config-file"],
)
def test_bad_config_gives_one_clear_line(bad_args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_cli([*TOY, *bad_args], run=False)
    assert exit_info.value.code == 2
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines  # no usage block, no nested union report
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "python -m lightning_dfd fit --" in lines[0]  # where to look up the accepted values


def test_debug_shows_the_full_parser_report(monkeypatch, capsys):
    monkeypatch.setenv("LIGHTNING_DFD_DEBUG", "1")
    with pytest.raises(SystemExit):
        build_cli([*TOY, "--model.drop_rate", "lots"], run=False)
    err = capsys.readouterr().err
    assert "usage:" in err and "Given value" in err


def test_unknown_key_in_yaml_is_rejected(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"model": {"class_path": "lightning_dfd.methods.binary.BinaryClassifier",
                                              "init_args": {"backbone": "resnet18", "bakbone_typo": 3}}}))
    with pytest.raises(SystemExit):
        build_cli(["--config", str(path), "--data", "tests.helpers.toy_data.ToyFaceDataModule"], run=False)
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and "model.bakbone_typo: unknown key" in lines[0]


def test_short_class_names_resolve():
    cli = build_cli(["--model", "BinaryClassifier", "--model.backbone", "resnet10t", "--data", "FFPPDataModule",
                     "--data.path", "unused", "--trainer.logger", "false"], run=False)
    assert isinstance(cli.model, BinaryClassifier)
    assert type(cli.datamodule).__name__ == "FFPPDataModule"


def test_fit_help_lists_methods_and_datamodules():
    out = subprocess.run([sys.executable, "-m", "lightning_dfd", "fit", "--help"], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    listed = " ".join(out.split())
    for name in ("methods.binary.BinaryClassifier", "methods.laanet.LAANetDetector", "datamodules.FFPPDataModule",
                 "datamodules.CelebDFDataModule", "datamodules.DFDCDataModule", "datamodules.CasiaSurfDataModule",
                 "datamodules.FaceFolderDataModule"):
        assert name in listed, name


def test_unavailable_pretrained_weights_fail_before_training(tmp_path, capsys):
    # raised during instantiation, surfaced as itself (not as jsonargparse's union error with a namespace dump)
    with pytest.raises(PretrainedWeightsError, match="weights fetch resnet18"):
        build_cli([*TOY, "--model.pretrained", "true"], run=False)
    with pytest.raises(PretrainedWeightsError, match="missing.safetensors not found"):
        build_cli([*TOY, "--model.pretrained", str(tmp_path / "missing.safetensors")], run=False)
    with pytest.raises(PretrainedWeightsError, match="pretrained: false"):
        BinaryClassifier(backbone="resnet18", pretrained=True)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TOY, "--model.pretrained", "true", "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 1
    lines = error_lines(capsys.readouterr().err)
    assert lines[-1].startswith("error: pretrained weights for timm model 'resnet18' are not available offline")
    assert "python -m lightning_dfd weights fetch resnet18" in lines[-1]
    assert not any("Given value" in line or "Namespace(" in line or "Union" in line for line in lines)


def test_missing_manifest_is_one_line_without_traceback(tmp_path):
    args = ["fit", "--model", "BinaryClassifier", "--model.backbone", "resnet10t", "--data", "FFPPDataModule",
            "--data.path", str(tmp_path / "nowhere"), "--trainer.logger", "false",
            "--trainer.default_root_dir", str(tmp_path)]
    out = subprocess.run([sys.executable, "-m", "lightning_dfd", *args], capture_output=True, text=True,
                         timeout=300, check=False)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    last = error_lines(out.stderr)[-1]
    assert last.startswith("error: manifest not found: ") and str(tmp_path / "nowhere") in last
    assert "preprocess" in last  # the fix


def test_debug_env_reraises_with_traceback(tmp_path, monkeypatch):
    from lightning_dfd.data.manifest import ManifestError

    monkeypatch.setenv("LIGHTNING_DFD_DEBUG", "1")
    with pytest.raises(ManifestError):
        main(["fit", "--model", "BinaryClassifier", "--model.backbone", "resnet10t", "--data", "FFPPDataModule",
              "--data.path", str(tmp_path / "nowhere"), "--trainer.logger", "false",
              "--trainer.default_root_dir", str(tmp_path)])


def write_checkpoint(path):
    import torch

    torch.save({"state_dict": {"w": torch.arange(4096.0)}, "global_step": 3, "epoch": 0}, path)
    return path


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled-object", "not-a-checkpoint"])
def test_damaged_checkpoint_gives_one_clear_line(damage, tmp_path, capsys):
    import torch

    path = tmp_path / "bad.ckpt"
    if damage == "truncated":
        data = write_checkpoint(path).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"PK\x03\x04" + b"\x00garbage" * 100)
    elif damage == "pickled-object":
        torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, path)  # needs weights_only=False
    else:
        torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *TOY, "--ckpt_path", str(path), "--trainer.default_root_dir", str(tmp_path)])
    assert exit_info.value.code == 1
    lines = error_lines(capsys.readouterr().err)
    assert lines[-1] == f"error: not a valid checkpoint: {path} (truncated or not a lightning-dfd checkpoint)"
    assert not any("weights_only" in line for line in lines)


def test_intact_checkpoint_reads(tmp_path):
    assert read_checkpoint(write_checkpoint(tmp_path / "ok.ckpt"))["global_step"] == 3


def test_ckpt_path_last_without_checkpoint_stops_unless_fresh(tmp_path, capsys):
    args = ["fit", *TOY, "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1
    last = error_lines(capsys.readouterr().err)[-1]
    assert last.startswith(f"error: --ckpt_path last: no last.ckpt in {tmp_path / 'checkpoints'}")
    assert "--if_no_checkpoint fresh" in last
    cli = main([*args, "--if_no_checkpoint", "fresh", "--trainer.fast_dev_run", "true"])
    assert cli.trainer.state.finished and cli.trainer.global_step == 1
    assert "starting a new run" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.ckpt"))  # fast_dev_run writes no checkpoint (Lightning's on_train_end did)


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
    assert {"synth", "preprocess", "slurm", "sweep", "demo", "preview-transforms", "weights"} <= set(EXTRA_COMMANDS)
    code = ("import sys\nimport lightning_dfd.__main__ as entry\nsys.argv = ['lightning_dfd', '--help']\n"
            "entry.run()\nprint('LOADED', 'lightning.pytorch' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    for name in ("fit", "validate", "test", "predict", *EXTRA_COMMANDS, "--debug"):
        assert f"  {name} " in out.stdout, name
    assert "LOADED False False" in out.stdout  # the top-level help does not import Lightning or torch


def test_extra_subcommands_do_not_import_lightning():
    code = ("import sys\nimport lightning_dfd.__main__ as entry\nsys.argv = ['lightning_dfd', 'preprocess', '--help']\n"
            "try:\n    entry.run()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'lightning.pytorch' in sys.modules, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "--dataset" in out.stdout
    assert "LOADED False False" in out.stdout
