"""`python -m lightning_dfd fit --config <any conf> --trainer.fast_dev_run true` works for every config.

Configs run on the synthetic twins at a tiny size (64 px, batch 4); everything else (model class and arguments,
protocol, pseudo-fakes, loggers, callbacks) is the config's own. Only a method that has a `pretrained` argument
gets `pretrained: false` (no weights offline), so a method without that argument runs as it is; a method fitted by
boosting (DefakeHop) fits fewer, single-threaded trees (`SMOKE_ARGS`): the fit is the same code, only smaller.
Overlay configs (`--config base.yaml --config overlay.yaml`, named in their header) run stacked on their base.
Every config also prints its resolved form (`fit --print_config`), with the links applied (schedule length =
trainer.max_epochs).
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml

from lightning_dfd.cli import main
from lightning_dfd.wiring import import_class

CONF = Path(__file__).resolve().parents[1] / "conf"
PARTIAL = ("data", "predict")  # data sections and predict overlays are used inside other configs
CONFIGS = sorted(p for p in CONF.rglob("*.yaml") if p.parent.name not in PARTIAL)
TWIN_OF = {"FFPPDataModule": "ffpp", "CelebDFDataModule": "celebdf", "DFDCDataModule": "dfdc",
           "CasiaSurfDataModule": "casia_surf", "UADFVDataModule": "uadfv", "WildDeepfakeDataModule": "wilddeepfake",
           "DFDDataModule": "dfd", "DeeperForensicsDataModule": "deeperforensics"}
TWIN_OF_VARIANT = {("DFDCDataModule", "preview"): "dfdc_preview",  # one DataModule, two layouts
                   ("CelebDFDataModule", "v1"): "celebdf_v1"}
TEST_ONLY = {"DFDDataModule"}  # test sets only: their configs run `test` (fast_dev_run), not `fit`


#: model arguments that shrink a smoke run where the method takes them (100 trees x 90 channels x 6 fits is minutes)
SMOKE_ARGS = {"n_jobs": "1", "channel_trees": "5", "final_trees": "5", "oof_folds": "2"}


def stack(config: Path) -> list[Path]:
    """[base, overlay] when the header says `--config conf/<base> --config conf/<this file>`, else [config]."""
    header = config.read_text()
    match = re.search(r"--config (conf/\S+\.yaml) --config (conf/\S+\.yaml)", header)
    if match and CONF.parent / match.group(2) == config:
        return [CONF.parent / match.group(1), config]
    return [config]


def data_section(configs: list[Path]) -> dict:
    merged: dict = {}
    for config in configs:
        data = (yaml.safe_load(config.read_text()) or {}).get("data")
        if isinstance(data, str):
            data = yaml.safe_load((config.parent / data).read_text())
        if data:
            if data.get("class_path") and data["class_path"] != merged.get("class_path"):
                merged = {"class_path": data["class_path"], "init_args": {}}
            merged.setdefault("init_args", {}).update(data.get("init_args") or {})
    return merged


def model_class(configs: list[Path]) -> type:
    """The method class the stacked configs select (the last ``model.class_path``)."""
    class_path = None
    for config in configs:
        model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
        class_path = model.get("class_path", class_path)
    return import_class(class_path)


def takes_argument(cls: type, name: str) -> bool:
    return name in inspect.signature(cls.__init__).parameters


def test_every_method_has_configs():
    assert {p.parent.name for p in CONFIGS} >= {"binary", "laanet", "demo"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fast_dev_run(config, twins, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # loggers' relative save_dirs land in tmp, not in the repository
    configs = stack(config)
    data = data_section(configs)
    name = data["class_path"].rsplit(".", 1)[-1]
    variant = data["init_args"].get("variant", data["init_args"].get("version"))
    twin = TWIN_OF_VARIANT.get((name, variant), TWIN_OF[name])
    args = ["test" if name in TEST_ONLY else "fit"]
    for path in configs:
        args += ["--config", str(path)]
    args += ["--data.init_args.path", str(twins[twin][1]), "--data.init_args.image_size", "64",
             "--data.init_args.batch_size", "4", "--data.init_args.num_workers", "0", "--trainer.fast_dev_run", "true",
             "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.default_root_dir", str(tmp_path),
             "--trainer.enable_progress_bar", "false"]
    if takes_argument(model_class(configs), "pretrained"):
        args += ["--model.init_args.pretrained", "false"]
    for argument, value in SMOKE_ARGS.items():
        if takes_argument(model_class(configs), argument):
            args += [f"--model.init_args.{argument}", value]
    cli = main(args)
    assert cli.trainer.state.finished, f"{config} did not finish"
    if name in TEST_ONLY:
        assert cli.trainer.callback_metrics, f"{config}: test logged no metric"
        return
    assert cli.trainer.global_step >= 1
    loss = cli.trainer.callback_metrics.get("train/loss_step", cli.trainer.callback_metrics.get("train/loss"))
    assert loss is not None and bool(loss.isfinite())


BASE_CONFIGS = [config for config in CONFIGS if stack(config) == [config]]  # overlays share their base's links


@pytest.mark.parametrize("config", BASE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_print_config(config, capsys):
    args = ["fit"]
    for path in stack(config):
        args += ["--config", str(path)]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--print_config"])
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    scheduler = printed["model"]["init_args"].get("lr_scheduler") or {}
    if scheduler and takes_argument(import_class(scheduler["class_path"]), "total_steps"):
        # a run-length schedule follows trainer.max_epochs (the link target is not printed: build the factory)
        import torch

        from lightning_dfd.cli import build_cli

        args = args[1:] + ["--trainer.max_epochs", "7", "--trainer.logger", "false", "--data.init_args.path", "unused"]
        if takes_argument(model_class(stack(config)), "pretrained"):
            args += ["--model.init_args.pretrained", "false"]
        cli = build_cli(args, run=False)
        built = cli.model.lr_scheduler_factory(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0))
        assert built.total_steps == 7, f"{config}: the schedule does not follow trainer.max_epochs"
