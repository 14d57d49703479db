"""Command-line entry point: a ``LightningCLI`` for fit/validate/test/predict plus extra subcommands.

``python -m lightning_dfd fit --config conf/binary/ffpp.yaml`` runs Lightning's own CLI (subclass mode for model and
data, ``class_path``/``init_args`` in YAML, ``--print_config``). The extra subcommands (``synth``, ``preprocess``,
``preview-transforms``, ``slurm``, ``sweep``, ``demo``) are typed Python functions registered in
:data:`EXTRA_COMMANDS`; jsonargparse builds their parsers from the signatures, so every one of them has ``--help``
and ``--config`` too. They do not need a model, a datamodule or a trainer, which is why they are dispatched before
the ``LightningCLI`` is built rather than as Trainer subcommands.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_dfd.callbacks.checkpoint import BestAndLastCheckpoint
from lightning_dfd.callbacks.prediction_writer import VideoPredictionWriter
from lightning_dfd.callbacks.random_state import RandomStateCheckpoint
from lightning_dfd.methods.base import DetectorModule

#: name -> "module:function" of the extra subcommands (imported lazily, so `fit` does not import video codecs).
EXTRA_COMMANDS: dict[str, str] = {
    "synth": "lightning_dfd.data.synthetic.cli:synth",
    "preprocess": "lightning_dfd.data.preprocess:preprocess",
    "preview-transforms": "lightning_dfd.transforms.preview:preview_from_config",
    "slurm": "lightning_dfd.cluster.slurm:slurm",
    "sweep": "lightning_dfd.cluster.sweep:sweep",
    "demo": "lightning_dfd.demo:demo",
}


class DetectionCLI(LightningCLI):
    """LightningCLI with the project's defaults.

    * ``--checkpoint.*``: a ``BestAndLastCheckpoint`` keeping the best model by validation video AUC and ``last.ckpt``
      in ``<default_root_dir>/checkpoints`` (a fixed place, so ``--ckpt_path last`` resumes a stopped run);
    * the random generators travel in the checkpoint (``RandomStateCheckpoint``), so a resume is exact;
    * W&B runs offline unless ``WANDB_API_KEY`` is set (``--wandb_mode`` overrides);
    * ``predict`` writes one CSV row per video (``VideoPredictionWriter``) unless the config adds its own writer.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--wandb_mode", type=str | None, default=None,
            help="W&B mode (online|offline|disabled). Default: offline unless WANDB_API_KEY is set.",
        )
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/video/auc",
            "checkpoint.mode": "max",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
        })

    def before_instantiate_classes(self) -> None:
        config = self.config.get(str(self.subcommand), self.config)
        configure_wandb_mode(config.get("wandb_mode"))
        if config.get("checkpoint") is not None and config.checkpoint.get("dirpath") is None:
            root = config.trainer.get("default_root_dir") or "."
            config.checkpoint.dirpath = str(Path(root) / "checkpoints")

    def before_predict(self) -> None:
        if not any(isinstance(cb, BasePredictionWriter) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(VideoPredictionWriter())


def configure_wandb_mode(mode: str | None = None) -> str:
    """Run W&B offline (the run lands in ./wandb, syncable later) unless a key is set; never block on the network."""
    if mode is None:
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_INIT_TIMEOUT", "30")
    return mode


#: per-command renames of command-line options: jsonargparse reserves ``--config`` for its own config files, but
#: ``preview-transforms --config X`` names a *training* config, as ``fit --config X`` does.
OPTION_ALIASES: dict[str, dict[str, str]] = {"preview-transforms": {"--config": "--train_config"}}


def load_command(name: str) -> Callable:
    module_name, _, attr = EXTRA_COMMANDS[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is None or not module_name.startswith(err.name):
            raise
        raise SystemExit(f"`python -m lightning_dfd {name}` is registered but not implemented yet ({module_name} does "
                         "not exist in this version); see the open issues.") from err
    return getattr(module, attr)


def run_extra_command(name: str, args: Sequence[str]):
    from jsonargparse import auto_cli

    aliases = OPTION_ALIASES.get(name, {})
    renamed = []
    for arg in args:
        option, sep, value = arg.partition("=")
        renamed.append(aliases.get(option, option) + sep + value if option in aliases else arg)
    return auto_cli(load_command(name), args=renamed, as_positional=False)


def build_cli(args: Sequence[str] | None = None, run: bool = True) -> DetectionCLI:
    """Build (and by default run) the Lightning part of the CLI; tests call it with ``args=[...]``."""
    return DetectionCLI(
        DetectorModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [RandomStateCheckpoint()]},
        parser_kwargs={"parser_mode": "yaml"},
        args=list(args) if args is not None else None,
        run=run,
    )


def main(args: Sequence[str] | None = None):
    argv = list(sys.argv[1:] if args is None else args)
    if argv and argv[0] in EXTRA_COMMANDS:
        return run_extra_command(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("extra subcommands: " + ", ".join(sorted(EXTRA_COMMANDS)) + " (each takes --help)\n")
    return build_cli(argv)
