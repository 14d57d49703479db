"""Registry of the extra subcommands of ``python -m lightning_dfd`` (kept free of heavy imports).

Each is a typed function that jsonargparse turns into a parser (``--help``, ``--config``, ``--print_config``);
it needs no model, DataModule or trainer, so it runs without importing Lightning or torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

#: name -> "module:function" of the extra subcommands (imported lazily, so `fit` does not import video codecs).
EXTRA_COMMANDS: dict[str, str] = {
    "synth": "lightning_dfd.data.synthetic.cli:synth",
    "preprocess": "lightning_dfd.data.preprocess:preprocess",
    "preview-transforms": "lightning_dfd.transforms.preview:preview_from_config",
    "slurm": "lightning_dfd.cluster.slurm:slurm",
    "sweep": "lightning_dfd.cluster.sweep:sweep",
    "demo": "lightning_dfd.demo:demo",
}


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
