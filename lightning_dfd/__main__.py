"""`python -m lightning_dfd ...`: extra subcommands without importing Lightning, else :func:`lightning_dfd.cli.main`."""

import sys

from lightning_dfd.commands import EXTRA_COMMANDS, run_extra_command


def run() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in EXTRA_COMMANDS:
        run_extra_command(sys.argv[1], sys.argv[2:])
        return
    from lightning_dfd.cli import main

    main()


if __name__ == "__main__":
    run()
