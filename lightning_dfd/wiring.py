"""What one side of the CLI knows and the other needs: argument links, and the checkpoint's inference settings.

:class:`~lightning_dfd.cli.DetectionCLI` uses this module in two places:

* ``add_arguments_to_parser`` registers the links (LightningCLI ``link_arguments``): the DataModule's channel
  count into the model's ``in_chans``, its class balance into ``pos_weight``, ``trainer.max_epochs`` into a
  run-length schedule's ``total_steps``. A target the chosen method lacks is skipped, so methods without those
  arguments work unchanged.
* ``apply_checkpoint_settings`` (before instantiation, for validate / test / predict with ``--ckpt_path FILE``)
  takes the data settings the checkpoint recorded (:meth:`DetectorModule.inference_settings`) for every value the
  user did not set, and refuses an explicit one that differs (:class:`CheckpointSettingsError`), or warns loudly
  under ``--override_checkpoint_settings true``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentParser, Namespace
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_warn

from lightning_dfd.errors import UserError

#: the flag that keeps explicit data settings that differ from the checkpoint's (with a warning).
OVERRIDE_FLAG = "override_checkpoint_settings"
#: the model argument a run-length schedule's length is linked to.
SCHEDULE_LENGTH_TARGET = "model.init_args.lr_scheduler.init_args.total_steps"
#: subcommands that reuse a checkpoint's inference settings.
INFERENCE_SUBCOMMANDS = ("validate", "test", "predict")


class CheckpointSettingsError(UserError, ValueError):
    """The data settings of a test / predict run differ from those the checkpoint was trained with."""


def data_num_channels(datamodule: LightningDataModule) -> int:
    """Channels of the data's model input (3 per modality; 3 for a DataModule that does not say)."""
    return int(getattr(datamodule, "num_channels", 3))


def data_pos_weight(datamodule: LightningDataModule) -> float | None:
    """The training set's weight of the fake class (None: the DataModule does not balance by loss weights)."""
    return getattr(datamodule, "pos_weight", None)


def schedule_length(max_epochs: int | None) -> int:
    """Length in epochs of a run-length schedule: ``trainer.max_epochs`` (Lightning's 1000 when unset)."""
    if max_epochs is None:
        return 1000
    if max_epochs < 1:
        raise ValueError(f"trainer.max_epochs = {max_epochs} gives no length for {SCHEDULE_LENGTH_TARGET}: set "
                         f"trainer.max_epochs to a positive number of epochs")
    return int(max_epochs)


#: DataModule value -> model argument, linked once the DataModule is instantiated.
INSTANTIATION_LINKS = {data_num_channels: "model.init_args.in_chans", data_pos_weight: "model.init_args.pos_weight"}


def add_links(parser: ArgumentParser) -> None:
    """Register the links of the module docstring on a (sub)command parser."""
    for compute_fn, target in INSTANTIATION_LINKS.items():
        parser.link_arguments("data", target, compute_fn=compute_fn, apply_on="instantiate")
    parser.link_arguments("trainer.max_epochs", SCHEDULE_LENGTH_TARGET, compute_fn=schedule_length,
                          apply_on="parse")


def explicit_config(parser: ArgumentParser) -> Namespace:
    """The values the user gave (config files and flags) in the parser's last parse, without any default."""
    # parse links need their sources, which a parse without defaults may lack: skip them (jsonargparse's own
    # switch for that; private, so pinned by the test of explicit settings in tests/test_contract.py)
    from jsonargparse._link_arguments import skip_apply_links

    args = getattr(parser, "args", None)
    if args is None:
        return Namespace()
    with skip_apply_links():
        return parser.parse_args(args, defaults=False, _skip_validation=True)


def drop_link_targets_from_dict_kwargs(model: Namespace | None) -> None:
    """Drop linked values the method does not take from a model config read back from a checkpoint.

    Lightning records every applied instantiation link in the hyper-parameters, also one whose target the method
    lacks (``in_chans`` of a method without it); ``--ckpt_path`` parsing puts such entries into ``dict_kwargs``
    and the method's ``__init__`` would refuse them. Arguments the method has are in ``init_args``, not here.
    """
    extra = model.get("dict_kwargs") if model is not None else None
    if not extra:
        return
    linked = {target.rsplit(".", 1)[-1] for target in INSTANTIATION_LINKS.values()}
    kept = {name: value for name, value in dict(extra).items() if name not in linked}
    if kept:
        model["dict_kwargs"] = kept
    else:
        del model["dict_kwargs"]


def import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def read_inference_settings(ckpt_path: str | Path) -> dict[str, Any] | None:
    """``checkpoint["lightning_dfd"]`` of a checkpoint file (None when it has none)."""
    import torch

    from lightning_dfd.methods.base import CHECKPOINT_SETTINGS_KEY

    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True, mmap=True)
    return checkpoint.get(CHECKPOINT_SETTINGS_KEY)


def apply_data_settings(config: Namespace, explicit: Namespace, trained: dict[str, Any], ckpt_path: str) -> None:
    """Fill ``config.data.init_args`` with the ``trained`` settings the user did not set in ``explicit``.

    Raises:
        CheckpointSettingsError: an explicit value differs (one line naming each key, both values and the fix),
            unless ``config.override_checkpoint_settings``: then a warning.
    """
    from lightning_dfd.methods.base import plain

    init_args = config.data.get("init_args")
    if init_args is None:
        init_args = config.data.init_args = Namespace()
    data_class = import_class(config.data.class_path)
    mismatches = []
    for name, value in trained.items():
        key = f"data.init_args.{name}"
        if name not in init_args:  # not an argument: a value the class fixes (the modalities of an RGB module)
            fixed = plain(getattr(data_class, name, value))
            if fixed != value:
                mismatches.append(f"{name}: trained with {value}, {data_class.__name__} serves {fixed}")
        elif key in explicit:
            given = plain(explicit.get(key))
            if given != value:
                mismatches.append(f"{key}: trained with {value}, the config sets {given}")
        else:
            init_args[name] = tuple(value) if isinstance(value, list) else value
    if not mismatches:
        return
    text = f"{ckpt_path} was trained with other data settings ({'; '.join(mismatches)})"
    if not config.get(OVERRIDE_FLAG):
        raise CheckpointSettingsError(f"{text}: drop those values to use the checkpoint's, or pass "
                                      f"--{OVERRIDE_FLAG} true to run with yours")
    rank_zero_warn(f"[lightning-dfd] WARNING: {text}; running with the config's values as --{OVERRIDE_FLAG} asks: "
                   f"the scores may not be comparable with training")
