"""Command-line entry point: a ``LightningCLI`` for fit/validate/test/predict plus extra subcommands.

``python -m lightning_dfd fit --config conf/binary/ffpp.yaml`` runs Lightning's own CLI (subclass mode for model and
data, ``class_path``/``init_args`` in YAML, ``--print_config``). The extra subcommands (``synth``, ``preprocess``,
``preview-transforms``, ``slurm``, ``sweep``, ``demo``) are typed Python functions registered in
:data:`EXTRA_COMMANDS`; jsonargparse builds their parsers from the signatures, so every one of them has ``--help``
and ``--config`` too. They do not need a model, a datamodule or a trainer, which is why they are dispatched before
the ``LightningCLI`` is built rather than as Trainer subcommands; their registry lives in the light
:mod:`lightning_dfd.commands`, so ``python -m lightning_dfd synth`` does not import Lightning.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lightning_dfd.callbacks.checkpoint import BestAndLastCheckpoint
from lightning_dfd.callbacks.prediction_writer import VideoPredictionWriter
from lightning_dfd.callbacks.random_state import RandomStateCheckpoint
from lightning_dfd.commands import EXTRA_COMMANDS, run_extra_command
from lightning_dfd.methods.base import DetectorModule

__all__ = ["EXTRA_COMMANDS", "DetectionCLI", "build_cli", "configure_wandb_mode", "main"]

class DetectionCLI(LightningCLI):
    """LightningCLI with the project's defaults.

    * ``--checkpoint.*``: a ``BestAndLastCheckpoint`` keeping the best model by validation video AUC and ``last.ckpt``
      in ``<default_root_dir>/checkpoints`` (a fixed place, so ``--ckpt_path last`` resumes a stopped run);
    * the random generators travel in the checkpoint (``RandomStateCheckpoint``), so a resume is exact;
    * W&B runs offline unless ``WANDB_API_KEY`` is set (``--wandb_mode`` overrides);
    * ``predict`` writes one CSV row per video (``VideoPredictionWriter``) unless the config adds its own writer.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """The project's arguments, and the links that carry what the data knows to the model.

        Links (:mod:`lightning_dfd.wiring`; a target the chosen method lacks is skipped): ``data.num_channels`` ->
        ``model.init_args.in_chans``, ``data.pos_weight`` -> ``model.init_args.pos_weight``, ``trainer.max_epochs``
        -> ``model.init_args.lr_scheduler.init_args.total_steps``. The dense targets' size against the model's
        stride cannot be linked before both are built: ``DetectorModule.check_data`` verifies it at fit start.
        """
        from lightning_dfd.wiring import OVERRIDE_FLAG, add_links

        parser.add_argument(
            "--wandb_mode", type=str | None, default=None,
            help="W&B mode (online|offline|disabled). Default: offline unless WANDB_API_KEY is set.",
        )
        parser.add_argument(
            f"--{OVERRIDE_FLAG}", type=bool, default=False,
            help="validate/test/predict with --ckpt_path: run with data settings (image size, normalisation, "
                 "modalities...) that differ from those the checkpoint was trained with, with a warning, instead "
                 "of refusing them.",
        )
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/video/auc",
            "checkpoint.mode": "max",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
        })
        add_links(parser)

    def apply_checkpoint_settings(self) -> None:
        """validate / test / predict with ``--ckpt_path FILE``: preprocess exactly as training did.

        (Any subcommand with ``--ckpt_path FILE``: the linked values a method lacks, which Lightning records in the
        checkpoint's hyper-parameters, are dropped before they reach its ``__init__``.)

        The data settings the checkpoint recorded (``DetectorModule.inference_settings``: image and resize size,
        normalisation, modalities, frames per video, clip mode) replace every value the user did not set; an
        explicit value (config file or flag) that differs is refused with one line naming it, or kept with a
        loud warning under ``--override_checkpoint_settings true`` (:func:`lightning_dfd.wiring.apply_data_settings`).
        """
        from lightning_dfd.wiring import (
            INFERENCE_SUBCOMMANDS,
            apply_data_settings,
            drop_link_targets_from_dict_kwargs,
            explicit_config,
            read_inference_settings,
        )

        subcommand = str(self.subcommand)
        config = self.config.get(subcommand)
        ckpt_path = config.get("ckpt_path") if config is not None else None
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        drop_link_targets_from_dict_kwargs(config.get("model"))  # any subcommand, resuming fit too
        if subcommand not in INFERENCE_SUBCOMMANDS or config.get("data") is None:
            return
        trained = (read_inference_settings(ckpt_path) or {}).get("data")
        if not trained:
            print(f"[lightning-dfd] {ckpt_path} records no data settings (an older checkpoint): "
                                    f"the config's image size and normalisation are used as they are")
            return
        explicit = explicit_config(self.parser).get(subcommand)
        apply_data_settings(config, explicit if explicit is not None else {}, trained, ckpt_path)

    def before_instantiate_classes(self) -> None:
        self.apply_checkpoint_settings()
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
    return build_cli(argv if args is not None else None)  # None: LightningCLI reads sys.argv itself
