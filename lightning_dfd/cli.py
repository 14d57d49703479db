"""Command-line entry point: a ``LightningCLI`` for fit/validate/test/predict plus extra subcommands.

``python -m lightning_dfd fit --config conf/binary/ffpp.yaml`` runs Lightning's own CLI (subclass mode for model and
data, ``class_path``/``init_args`` in YAML, ``--print_config``). The extra subcommands (``synth``, ``preprocess``,
``preview-transforms``, ``slurm``, ``sweep``, ``demo``, ``weights``) are typed Python functions registered in
:data:`EXTRA_COMMANDS`; jsonargparse builds their parsers from the signatures, so every one of them has ``--help``
and ``--config`` too. They do not need a model, a datamodule or a trainer, which is why they are dispatched before
the ``LightningCLI`` is built rather than as Trainer subcommands; their registry lives in the light
:mod:`lightning_dfd.commands`, so ``python -m lightning_dfd synth`` does not import Lightning.

Errors a person can act on (a bad key, value or file, a missing manifest, unavailable weights, a damaged
checkpoint) are printed as one ``error: ...`` line naming the key or file and the fix; ``--debug`` (or
``LIGHTNING_DFD_DEBUG=1``) shows the full usage and traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import re
import socket
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn
from urllib.parse import urlparse

import torch
from jsonargparse import Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger

from lightning_dfd.callbacks.checkpoint import BestAndLastCheckpoint
from lightning_dfd.callbacks.prediction_writer import VideoPredictionWriter
from lightning_dfd.callbacks.quiet_sanity_check import QuietSanityCheck
from lightning_dfd.callbacks.random_state import RandomStateCheckpoint
from lightning_dfd.callbacks.run_identity import RunIdentity
from lightning_dfd.commands import EXTRA_COMMANDS, run_extra_command
from lightning_dfd.errors import (
    DEBUG_ENV,
    ConfigValueError,
    InvalidCheckpointError,
    MissingCheckpointError,
    debug_enabled,
    find_user_error,
    run_reporting_user_errors,
)
from lightning_dfd.methods.base import DetectorModule

__all__ = ["EXTRA_COMMANDS", "DetectionCLI", "DetectionParser", "build_cli", "configure_wandb_mode", "main",
           "newest_resumable", "read_checkpoint", "register_project_classes"]

#: packages whose classes are imported before parsing, so ``--model BinaryClassifier`` / ``--data FFPPDataModule``
#: (short names) resolve and ``--help`` lists every method and DataModule as a known subclass.
PROJECT_PACKAGES = ("lightning_dfd.methods", "lightning_dfd.datamodules")

#: where ``configure_wandb_mode`` checks that W&B is reachable before running online.
WANDB_DEFAULT_URL = "https://api.wandb.ai"
WANDB_PROBE_TIMEOUT_S = 1.5

#: warnings raised inside Lightning by its own calls (nothing a user can act on). LightningCLI's calls of
#: jsonargparse APIs deprecated in 4.49 are silenced by jsonargparse's own switch (see :func:`quiet_known_noise`).
SILENCED_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning's pytree helper on torch >= 2.10
)
#: Lightning info lines that advertise or state the obvious.
SILENCED_LOG_PREFIXES = ("💡 Tip:", "TPU available:")


class DetectionParser(LightningArgumentParser):
    """LightningCLI's parser, reporting a bad key, value or file as one line that names it and where to look.

    jsonargparse prints the whole usage (60-70 lines) and a nested union report before the one fact that matters;
    here only that fact is printed (:func:`summarize_parser_error`). With ``--debug`` the original report is shown.
    """

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or debug_enabled():
            super().error(message, ex)
        parser = getattr(ex, "subcommand_parser", None) or self
        sys.stderr.write("error: " + summarize_parser_error(message, subcommand_of(parser.prog)) + "\n")
        raise SystemExit(2)


def subcommand_of(prog: str) -> str:
    """``fit`` / ``validate`` / ``test`` / ``predict`` from a parser's ``prog``, ``fit`` when it names none."""
    words = prog.split()
    return next((w for w in reversed(words) if w in LightningCLI.subcommands()), "fit")


_STRUCTURE = re.compile(r"^(Does not validate against|Subtypes:|Errors:|Given value|Expected a path but|"
                        r"Expected a <class 'NoneType'>|Parser key |Problem with given class_path )")


def summarize_parser_error(message: str, subcommand: str = "fit") -> str:
    """One line from jsonargparse's (nested, multi-line) error report: the key, what is wrong, and where to look.

    ``Parser key "model": ... Problem with given class_path 'X': Parser key "drop_rate": Expected a <class
    'float'>. Got value: lots`` becomes ``model.drop_rate: expected float, got 'lots' (X) ...``.
    """
    lines = [re.sub(r'^Parser key "[^"]+":\s*', "", line.strip().removeprefix("- ").strip())
             for line in message.splitlines()]
    keys = re.findall(r'Parser key "([^"]+)"', message)
    class_paths = re.findall(r"Problem with given class_path '([^']+)'", message)
    leaves = [line for line in lines if line and not _STRUCTURE.match(line)]
    leaf = (leaves[0] if keys or class_paths else " ".join(leaves)) if leaves else " ".join(" ".join(lines).split())
    unknown = re.match(r"Option '([^']+)' is not accepted", leaf) or re.match(
        r"Group '([^']+)' does not accept option '([^']+)'", leaf)
    if unknown and leaf.startswith("Option"):
        keys.append(unknown.group(1))
        leaf = "unknown key" + (f" for {class_paths[-1].rsplit('.', 1)[-1]}" if class_paths else "")
    elif unknown:
        keys = [unknown.group(1), unknown.group(2)]
        leaf = "unknown key"
    leaf = re.sub(r"<class '(?:[\w.]+\.)?(\w+)'>", r"\1", leaf)
    leaf = re.sub(r"typing\.Literal\[(.*)\]", r"one of [\1]", leaf)
    if leaf.startswith("Expected a ") and "Got value" not in leaf and "import path" not in leaf:
        given = re.search(r"Given value: (?:NestedArg\(key='[^']*', val=)?'?([^')]*)'?\)?$", message, re.MULTILINE)
        if given:
            leaf += f". Got value: {given.group(1)}"
    leaf = leaf.replace("Expected a ", "expected ", 1).replace(". Got value: ", ", got ")
    key = ".".join(keys)
    known = ", ".join(_known_project_classes(keys[0] if keys else ""))
    if class_paths and not _importable(class_paths[-1]):
        leaf = f"cannot import class_path '{class_paths[-1]}' ({leaf})" + (f"; known: {known}" if known else "")
    elif leaf.startswith("expected dot import path string"):
        leaf = f"no class named '{leaf.rsplit(':', 1)[-1].strip()}'" + (f"; known: {known}" if known else "")
    where = f"python -m lightning_dfd {subcommand} --help"
    if class_paths and keys and _importable(class_paths[0]):
        where = f"python -m lightning_dfd {subcommand} --{keys[0]}.help {class_paths[0].rsplit('.', 1)[-1]}"
    return f"{key + ': ' if key else ''}{leaf}. Fix it in the config or on the command line; options: {where}"


def _importable(class_path: str) -> bool:
    module, _, name = class_path.rpartition(".")
    try:
        return hasattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - any import failure means "not importable"
        return False


def _known_project_classes(key: str) -> list[str]:
    base: type = DetectorModule if key == "model" else LightningDataModule
    found: set[str] = set()
    stack = [base]
    while stack:
        cls = stack.pop()
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("lightning_dfd."):
                found.add(sub.__name__)
    return sorted(found)


class _DropPrefixes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(SILENCED_LOG_PREFIXES)


def quiet_known_noise() -> None:
    """Silence, once per process, the start-up messages that tell the user nothing (see :data:`SILENCED_WARNINGS`).

    W&B's "The anonymous setting has no effect" line is left: Lightning's ``WandbLogger`` passes
    ``anonymous=None`` to wandb >= 0.20, which warns before its own ``WANDB_SILENT`` applies; it is harmless.
    """
    os.environ.setdefault("JSONARGPARSE_DEPRECATION_WARNINGS", "off")  # `all` shows them again
    for pattern in SILENCED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _DropPrefixes) for f in log.filters):
            log.addFilter(_DropPrefixes())


def register_project_classes() -> None:
    """Import every module of the method and DataModule packages, so their classes are known subclasses.

    jsonargparse resolves a short ``class_path`` (``BinaryClassifier``) and lists the choices in ``--help`` among
    the subclasses that are imported; a new method file under ``lightning_dfd/methods/`` is picked up without
    registering it anywhere.
    """
    for package_name in PROJECT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            importlib.import_module(info.name)


class DetectionCLI(LightningCLI):
    """LightningCLI with the project's defaults.

    * ``--checkpoint.*``: a ``BestAndLastCheckpoint`` keeping the best model by validation video AUC and ``last.ckpt``
      in ``<default_root_dir>/checkpoints`` (a fixed place, so ``--ckpt_path last`` resumes a stopped run);
      ``--ckpt_path last`` with nothing to resume stops with an error unless ``--if_no_checkpoint fresh``;
    * the random generators travel in the checkpoint (``RandomStateCheckpoint``), so a resume is exact, and so do
      the CSV version and W&B run id (``RunIdentity``), so a resumed run continues the same logs;
    * loggers write under ``--trainer.default_root_dir`` (the YAML's relative ``save_dir`` follows it);
    * W&B runs offline unless ``WANDB_API_KEY`` is set and W&B is reachable (``--wandb_mode`` overrides);
    * the sanity check does not warn about metrics it cannot compute (``QuietSanityCheck``), and start-up noise
      from Lightning/jsonargparse internals is silenced (:func:`quiet_known_noise`);
    * ``predict`` opens no logger and writes one CSV row per video (``VideoPredictionWriter``) unless the config
      adds its own writer.
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
            "--wandb_log_model", type=bool | str, default=True,
            help="log_model of every WandbLogger that leaves it false: true (best + last checkpoint as a model "
                 "artifact at the end of training), all (every checkpoint as written) or false (no artifact).",
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
            # SIGTERM (a cluster's notice) or Ctrl-C writes a resumable last.ckpt (mid-epoch resume is exact)
            "checkpoint.save_on_exception": True,
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
        # `--ckpt_path last` was resolved (and checked) by check_checkpoint before this runs
        ckpt_path = (getattr(self, "resume_state", None) or {}).get("path", ckpt_path)
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

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        super().add_default_arguments_to_parser(parser)
        parser.add_argument(
            "--if_no_checkpoint", type=Literal["error", "fresh"], default="error",
            help="What `--ckpt_path last` does when the run has no checkpoint yet: `error` (stop and say so) or "
                 "`fresh` (start a new run; for jobs that are always launched with --ckpt_path last).",
        )

    def _parse_ckpt_path(self) -> None:
        # runs right after parsing, before Lightning (and the checkpoint settings) read the checkpoint
        self.resume_state = self.check_checkpoint()
        super()._parse_ckpt_path()

    def check_checkpoint(self) -> dict[str, Any] | None:
        """Resolve ``--ckpt_path``, refuse a missing ``last`` or a damaged file; the loaded checkpoint's run state.

        Returns ``{"path", "global_step", "identity"}`` for an existing checkpoint (``identity``: what
        :class:`RunIdentity` stored), else None.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return None
        config = self.config[subcommand]
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or ckpt_path in ("best", "hpc", "registry") or str(ckpt_path).startswith("registry:"):
            return None
        if ckpt_path == "last":
            directory = checkpoint_dir(config)
            found = newest_resumable(directory, Path(config.trainer.get("default_root_dir") or "."))
            if not found:
                if config.get("if_no_checkpoint") == "fresh":
                    sys.stderr.write(f"lightning-dfd: no checkpoint in {directory}: starting a new run "
                                     "(--if_no_checkpoint fresh)\n")
                    config.ckpt_path = None
                    return None
                raise MissingCheckpointError(
                    f"--ckpt_path last: no last.ckpt in {directory} (nothing to resume). Fix: give "
                    "--ckpt_path PATH, set --trainer.default_root_dir to the stopped run's folder, or add "
                    "--if_no_checkpoint fresh to start a new run")
            path = found[-1]
            if path.name.startswith("hpc_ckpt_"):  # written on SLURM's SIGUSR1: Lightning's "last" skips it
                config.ckpt_path = str(path)
        else:
            path = Path(ckpt_path)
            if not path.is_file():
                raise MissingCheckpointError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
        checkpoint = read_checkpoint(path)
        identity = (checkpoint.get("callbacks") or {}).get(RunIdentity.__qualname__) or {}
        return {"path": str(path), "global_step": int(checkpoint.get("global_step", 0)), "identity": dict(identity)}

    def before_instantiate_classes(self) -> None:
        self.apply_checkpoint_settings()
        config = self.config.get(str(self.subcommand), self.config)
        if config.get("checkpoint") is not None and config.checkpoint.get("dirpath") is None:
            config.checkpoint.dirpath = str(checkpoint_dir(config))
        place_loggers(config, self.subcommand)
        label_wandb_runs(config, str(self.subcommand))
        if self.subcommand == "fit" and getattr(self, "resume_state", None):
            resume_loggers(config, self.resume_state["identity"])
        configure_wandb_mode(config.get("wandb_mode"), probe=has_wandb_logger(config))

    def instantiate_classes(self) -> None:
        """Instantiate as LightningCLI does; an error of ours raised inside a class surfaces as itself.

        jsonargparse re-raises an exception from a class's ``__init__`` as a union-type ``ValueError`` with a dump
        of the namespace; the cause (e.g. :class:`~lightning_dfd.models.backbones.PretrainedWeightsError`) is what
        the user needs to read.
        """
        try:
            super().instantiate_classes()
        except Exception as err:  # re-raised unless it wraps a readable cause
            cause = find_user_error(err)
            if debug_enabled():
                raise
            if cause is not None and cause is not err:
                raise cause from None
            if err.__cause__ is not None and isinstance(err.__cause__, ValueError) and "Given value" in str(err):
                owner = re.search(r"class_path='([^']+)'", str(err))
                where = owner.group(1).rsplit(".", 1)[-1] if owner else "a configured class"
                raise ConfigValueError(f"{where}: {err.__cause__}") from err.__cause__
            raise

    def before_fit(self) -> None:
        if getattr(self, "resume_state", None):
            keep_csv_history(self.trainer, self.resume_state["global_step"])

    def before_predict(self) -> None:
        if not any(isinstance(cb, BasePredictionWriter) for cb in self.trainer.callbacks):
            self.trainer.callbacks.append(VideoPredictionWriter())


def checkpoint_dir(config: Namespace) -> Path:
    """The run's checkpoint folder: ``--checkpoint.dirpath`` or ``<default_root_dir>/checkpoints``."""
    dirpath = config.checkpoint.get("dirpath") if config.get("checkpoint") is not None else None
    if dirpath:
        return Path(dirpath)
    return Path(config.trainer.get("default_root_dir") or ".") / "checkpoints"


def newest_resumable(checkpoints: Path, root_dir: Path) -> list[Path]:
    """The checkpoints ``--ckpt_path last`` may resume from, oldest first (the last one is taken).

    ``last.ckpt`` (or ``last-vN.ckpt``) in the checkpoint folder, and the ``hpc_ckpt_N.ckpt`` that Lightning's
    SLURMEnvironment writes into ``default_root_dir`` when SLURM signals the job (SIGUSR1) before requeueing it:
    a requeued job launched with ``--ckpt_path last`` resumes from whichever was written last.
    """
    found = [p for p in checkpoints.glob("last*.ckpt") if re.match(r"^last(-v?\d+)?$", p.stem)] \
        if checkpoints.is_dir() else []
    found += [p for p in root_dir.glob("hpc_ckpt_*.ckpt") if re.match(r"^hpc_ckpt_\d+$", p.stem)] \
        if root_dir.is_dir() else []
    return sorted(found, key=lambda p: p.stat().st_mtime)


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint (CPU, ``weights_only=True``, memory-mapped); a damaged file raises one clear error.

    Raises :class:`~lightning_dfd.errors.InvalidCheckpointError` ("not a valid checkpoint: PATH (truncated or not a
    lightning-dfd checkpoint)") for a truncated/corrupt file or one that is not a Lightning checkpoint dict, instead
    of torch's zip or unpickling errors (which suggest ``weights_only=False``).
    """
    path = str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # zip, pickle, EOF and mmap errors all mean "damaged"
        raise InvalidCheckpointError(path) from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InvalidCheckpointError(path)
    return checkpoint


def _loggers(config: Namespace) -> list[Namespace]:
    loggers = config.trainer.get("logger")
    if isinstance(loggers, Namespace):
        return [loggers]
    if isinstance(loggers, list):
        return [lg for lg in loggers if isinstance(lg, Namespace)]
    return []


def _is_logger(logger: Namespace, name: str) -> bool:
    return str(logger.get("class_path", "")).rsplit(".", 1)[-1] == name


def has_wandb_logger(config: Namespace) -> bool:
    return any(_is_logger(lg, "WandbLogger") for lg in _loggers(config))


def place_loggers(config: Namespace, subcommand: str | None) -> None:
    """Loggers write under ``--trainer.default_root_dir``; ``predict`` opens none (no W&B run, no CSV version).

    A logger's relative ``save_dir`` (the YAML's ``outputs/...``) is replaced by ``default_root_dir``, so a run
    moved with ``--trainer.default_root_dir /scratch/run1`` keeps its CSV and W&B files beside its checkpoints. An
    absolute ``save_dir`` is kept as given.
    """
    if subcommand == "predict":
        if config.trainer.get("logger") not in (None, False):
            config.trainer.logger = False
        return
    root = config.trainer.get("default_root_dir")
    if not root:
        return
    for logger in _loggers(config):
        init_args = logger.get("init_args")
        if init_args is None or "save_dir" not in init_args:
            continue
        save_dir = init_args.get("save_dir")
        if save_dir is None or not Path(str(save_dir)).is_absolute():
            init_args.save_dir = str(root)


def label_wandb_runs(config: Namespace, subcommand: str) -> None:
    """W&B run name, group and tags from the config, and the checkpoints as artifacts, where the config is silent.

    * ``name``: the (last) config file's stem, e.g. ``ffpp_sbi``;
    * ``group`` (sweeps and cross-dataset runs of one method land together): the method class, e.g.
      ``LAANetDetector``;
    * ``tags``: the method class, the DataModule class and the subcommand;
    * ``log_model``: ``--wandb_log_model`` (default ``true``) where the logger leaves it false, so W&B keeps
      the best checkpoint (alias ``best``) and ``last.ckpt`` (alias
      ``latest``) as a model artifact at the end of training (offline: synced with the run by ``wandb sync``).
      ``all`` logs every checkpoint as it is written; ``--wandb_log_model false`` keeps checkpoints out of W&B.
    Other values the config gives are kept as they are.
    """
    def short(section: str) -> str | None:
        value = config.get(section)
        class_path = value.get("class_path") if isinstance(value, Namespace) else None
        return str(class_path).rsplit(".", 1)[-1] if class_path else None

    files = [str(path) for path in (config.get("config") or []) if path is not None]
    for logger in _loggers(config):
        if not _is_logger(logger, "WandbLogger") or logger.get("init_args") is None:
            continue
        init_args = logger.init_args
        if not init_args.get("name") and files:
            init_args.name = Path(files[-1]).stem
        if not init_args.get("log_model"):
            init_args.log_model = config.get("wandb_log_model", True)
        extra = dict(logger.get("dict_kwargs") or {})
        if short("model") and "group" not in extra:
            extra["group"] = short("model")
        if "tags" not in extra:
            extra["tags"] = [tag for tag in (short("model"), short("data"), subcommand) if tag]
        logger.dict_kwargs = extra


def resume_loggers(config: Namespace, identity: dict[str, Any]) -> None:
    """Point the CSV logger at the stopped run's version and W&B at its run id (``resume="allow"``)."""
    for logger in _loggers(config):
        init_args = logger.get("init_args")
        if init_args is None:
            continue
        if _is_logger(logger, "CSVLogger") and "csv_version" in identity and init_args.get("version") is None:
            init_args.version = identity["csv_version"]
        elif _is_logger(logger, "WandbLogger") and "wandb_id" in identity and init_args.get("id") is None:
            init_args.id = identity["wandb_id"]
            logger.dict_kwargs = {**(logger.get("dict_kwargs") or {}), "resume": "allow"}


def keep_csv_history(trainer: Any, global_step: int) -> None:
    """Keep a resumed CSV version's ``metrics.csv`` (Lightning's writer deletes it), up to the checkpoint's step."""
    import csv

    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger) or logger._experiment is not None:
            continue
        metrics = Path(logger.log_dir) / "metrics.csv"
        if not metrics.is_file():
            continue
        with metrics.open(newline="") as handle:
            reader = csv.DictReader(handle)
            header = list(reader.fieldnames or [])
            rows = [row for row in reader if not row.get("step") or float(row["step"]) <= global_step]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*exists and is not empty.*")
            writer = logger.experiment  # creates the writer, which removes the old file
        with metrics.open("w", newline="") as handle:
            out = csv.DictWriter(handle, fieldnames=header)
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(header)


def wandb_unreachable(timeout: float | None = None) -> str | None:
    """Why W&B cannot be reached (a TCP connect to its host within ``timeout`` s, DNS included), or None if it can.

    The connect runs in a daemon thread so a resolver that hangs cannot block the run. ``timeout`` defaults to
    :data:`WANDB_PROBE_TIMEOUT_S`.
    """
    timeout = WANDB_PROBE_TIMEOUT_S if timeout is None else timeout
    url = urlparse(os.environ.get("WANDB_BASE_URL") or WANDB_DEFAULT_URL)
    host = url.hostname or "api.wandb.ai"
    port = url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(f"{host}:{port} unreachable ({err.__class__.__name__}: {err})")

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return outcome[0] if outcome else f"{host}:{port} did not answer within {timeout:.1f} s"


def configure_wandb_mode(mode: str | None = None, probe: bool = True) -> str:
    """Run W&B offline (the run lands in ``<save_dir>/wandb``, syncable later) unless a key is set and it is reachable.

    With ``online`` (``WANDB_API_KEY`` set, or asked for) and ``probe``, a short connect to the W&B host decides:
    unreachable means offline with one warning, instead of W&B waiting ~40 s and then failing the run.
    """
    if mode is None:
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
    if mode == "online" and probe:
        reason = wandb_unreachable()
        if reason is not None:
            warnings.warn(f"W&B: {reason}; logging offline instead (sync later with `wandb sync <save_dir>/wandb`)",
                          UserWarning, stacklevel=2)
            mode = "offline"
    os.environ["WANDB_MODE"] = mode
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_INIT_TIMEOUT", "30")
    return mode


def build_cli(args: Sequence[str] | None = None, run: bool = True) -> DetectionCLI:
    """Build (and by default run) the Lightning part of the CLI; tests call it with ``args=[...]``."""
    register_project_classes()
    quiet_known_noise()
    return DetectionCLI(
        DetectorModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"callbacks": [RandomStateCheckpoint(), RunIdentity(), QuietSanityCheck()]},
        parser_kwargs={"parser_mode": "yaml"},
        parser_class=DetectionParser,
        args=list(args) if args is not None else None,
        run=run,
    )


def main(args: Sequence[str] | None = None):
    """``python -m lightning_dfd ...``; a user error is printed as one line (exit status 1) unless ``--debug``."""
    argv = list(sys.argv[1:] if args is None else args)
    if "--debug" in argv:
        argv = [arg for arg in argv if arg != "--debug"]
        os.environ[DEBUG_ENV] = "1"
        if args is None:
            sys.argv = sys.argv[:1] + argv
    if argv and argv[0] in EXTRA_COMMANDS:
        return run_extra_command(argv[0], argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print("extra subcommands: " + ", ".join(sorted(EXTRA_COMMANDS)) + " (each takes --help)\n")
    # None: LightningCLI reads sys.argv itself
    return run_reporting_user_errors(lambda: build_cli(argv if args is not None else None))
