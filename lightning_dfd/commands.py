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
    "weights": "lightning_dfd.weights:COMMANDS",
    "evaluate": "lightning_dfd.evaluation:evaluate",
    "ensemble": "lightning_dfd.evaluation:ensemble",
}

#: one line per extra subcommand for ``python -m lightning_dfd --help`` (answered without importing the commands).
COMMAND_SUMMARIES: dict[str, str] = {
    "synth": "write a synthetic twin of a dataset in its official layout",
    "preprocess": "raw dataset or videos -> face crops + landmarks + manifest (resumable)",
    "preview-transforms": "PNG grid of what a training config feeds the model",
    "slurm": "render a training config as an sbatch script and submit it (requeue + resume)",
    "sweep": "run a W&B sweep file: wandb agent online, or --offline with the local engine",
    "demo": "synth + preprocess + fit + test on CPU in a few minutes",
    "weights": "fetch / list pretrained backbone weights (fetch is the one command that uses the network)",
    "evaluate": "test checkpoints on several datasets: one Markdown + CSV table, one ROC PNG",
    "ensemble": "test the mean fake probability of several checkpoints (optional flip TTA)",
}


#: per-command renames of command-line options: jsonargparse reserves ``--config`` for its own config files, but
#: ``preview-transforms --config X`` names a *training* config, as ``fit --config X`` does.
OPTION_ALIASES: dict[str, dict[str, str]] = {"preview-transforms": {"--config": "--train_config"},
                                             "ensemble": {"--config": "--data"},
                                             "slurm": {"--config": "--train_configs+"}}

#: commands whose options may also be spelled with dashes (``--gpus-per-node`` = ``--gpus_per_node``), and whose
#: words after a bare ``--`` are passed on unchanged to the training command (collected into ``--cli_args``).
DASHED_OPTIONS: frozenset[str] = frozenset({"slurm", "sweep"})
PASSTHROUGH_ARGUMENTS: dict[str, str] = {"slurm": "--cli_args", "sweep": "--cli_args"}
#: commands whose first bare word is an option's value (``sweep sweeps/x.yaml`` = ``sweep --sweep_file sweeps/x.yaml``).
POSITIONAL_ARGUMENTS: dict[str, str] = {"sweep": "--sweep_file"}
#: boolean options that may be given bare (``--dry-run`` = ``--dry_run=true``).
BARE_FLAGS: dict[str, tuple[str, ...]] = {"slurm": ("--dry_run",), "sweep": ("--offline", "--slurm")}

#: (command, its sub-subcommand) -> the list option that collects bare words: ``weights fetch a b`` means
#: ``weights fetch --names [a,b]`` (jsonargparse's positional lists take one ``[a,b]`` token).
LIST_ARGUMENTS: dict[tuple[str, str], str] = {("weights", "fetch"): "--names"}

#: command -> its list options that take several words: ``evaluate --ckpt a.ckpt b.ckpt --data x.yaml`` means
#: ``--ckpt ["a.ckpt", "b.ckpt"]`` (jsonargparse's list options take one ``[a,b]`` token).
MULTI_WORD_OPTIONS: dict[str, tuple[str, ...]] = {"evaluate": ("--ckpt", "--data", "--data_paths"),
                                                  "ensemble": ("--ckpt", "--data", "--data_paths")}


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


def collect_list_argument(name: str, args: Sequence[str]) -> list[str]:
    """Turn the bare words after ``name``'s sub-subcommand into its list option (see :data:`LIST_ARGUMENTS`)."""
    args = list(args)
    option = LIST_ARGUMENTS.get((name, args[0])) if args else None
    if option is None:
        return args
    kept, words = [args[0]], []
    for index, arg in enumerate(args[1:], start=1):
        previous = args[index - 1]
        takes_value = previous.startswith("--") and "=" not in previous and index > 1
        if arg.startswith("-") or takes_value:
            kept.append(arg)
        else:
            words.append(arg)
    return kept + ([f"{option}=[{','.join(words)}]"] if words else [])


def collect_option_words(name: str, args: Sequence[str]) -> list[str]:
    """Turn ``--opt a b c`` into ``--opt=["a", "b", "c"]`` for ``name``'s :data:`MULTI_WORD_OPTIONS` (a value
    already written as one list token, ``--opt [a,b]`` or ``--opt=[a,b]``, is left as it is; ``--opt=a`` is one
    word)."""
    import json

    options = MULTI_WORD_OPTIONS.get(name, ())
    out: list[str] = []
    args = list(args)
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        option, sep, value = arg.partition("=")
        if sep and option in options and not value.startswith("["):
            out.append(f"{option}={json.dumps([value])}")  # --data=x.yaml: one word
            continue
        if arg not in options:
            out.append(arg)
            continue
        words = []
        while index < len(args) and not args[index].startswith("--"):
            words.append(args[index])
            index += 1
        if len(words) == 1 and words[0].startswith("["):
            out += [arg, words[0]]
        else:
            out.append(f"{arg}={json.dumps(words)}")
    return out


def run_extra_command(name: str, args: Sequence[str]):
    """Run an extra subcommand; a user error (bad input, named with its fix) is printed as one line, exit status 1."""
    from jsonargparse import auto_cli

    from lightning_dfd.errors import run_reporting_user_errors

    aliases = OPTION_ALIASES.get(name, {})
    args, passthrough = list(args), None
    if name in PASSTHROUGH_ARGUMENTS and "--" in args:
        cut = args.index("--")
        args, passthrough = args[:cut], args[cut + 1:]
    if name in POSITIONAL_ARGUMENTS and args and not args[0].startswith("-"):
        args = [f"{POSITIONAL_ARGUMENTS[name]}={args[0]}", *args[1:]]
    renamed = []
    for arg in args:
        if name in DASHED_OPTIONS and arg.startswith("--"):
            option, sep, value = arg.partition("=")
            arg = "--" + option[2:].replace("-", "_") + sep + value
            if arg in BARE_FLAGS.get(name, ()):
                arg += "=true"
        option, sep, value = arg.partition("=")
        renamed.append(aliases.get(option, option) + sep + value if option in aliases else arg)
    if passthrough:
        import json

        renamed.append(f"{PASSTHROUGH_ARGUMENTS[name]}={json.dumps(passthrough)}")
    return run_reporting_user_errors(
        lambda: auto_cli(load_command(name), args=collect_option_words(name, collect_list_argument(name, renamed)),
                         as_positional=False))
