"""``python -m lightning_dfd ...``: extra subcommands and ``--help`` without importing Lightning, else the LightningCLI.

The top-level ``--help`` only lists the subcommands, so it is answered here from :data:`TRAINER_SUBCOMMANDS` and
:data:`~lightning_dfd.commands.EXTRA_COMMANDS` (well under a second) instead of importing torch and Lightning
(several seconds); ``fit --help`` and every run go to :func:`lightning_dfd.cli.main`.
"""

import sys

from lightning_dfd.commands import COMMAND_SUMMARIES, EXTRA_COMMANDS, run_extra_command

#: Lightning's subcommands (the Trainer methods LightningCLI exposes), with their one-line descriptions.
TRAINER_SUBCOMMANDS = {
    "fit": "Train (and validate) a model: --config conf/<method>/<file>.yaml; --ckpt_path last resumes.",
    "validate": "One evaluation epoch over the validation set.",
    "test": "One evaluation epoch over the test set(s): frame- and video-level metrics, ROC and report files.",
    "predict": "Score videos or folders of face crops: one CSV row per video.",
}


def top_level_help() -> str:
    """The text of ``python -m lightning_dfd --help``."""
    lines = ["usage: python -m lightning_dfd SUBCOMMAND [--config FILE.yaml] [options]", "",
             "Deepfake detection / face anti-spoofing with PyTorch Lightning.", "",
             "training subcommands (LightningCLI; each takes --help, --config, --print_config):"]
    lines += [f"  {name:<20}{text}" for name, text in TRAINER_SUBCOMMANDS.items()]
    lines += ["", "extra subcommands (each takes --help):"]
    lines += [f"  {name:<20}{COMMAND_SUMMARIES.get(name, '')}" for name in sorted(EXTRA_COMMANDS)]
    lines += ["", "options:", "  -h, --help          show this message",
              ("  --debug             show tracebacks and "
              "the full parser report instead of one-line errors (also LIGHTNING_DFD_DEBUG=1)")]
    return "\n".join(lines)


def run() -> None:
    argv = sys.argv[1:]
    if argv and argv[0] in EXTRA_COMMANDS:
        run_extra_command(argv[0], argv[1:])
        return
    if argv and argv[0] in ("-h", "--help"):
        print(top_level_help())
        return
    from lightning_dfd.cli import main

    main()


if __name__ == "__main__":
    run()
