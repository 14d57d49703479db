"""`python -m lightning_dfd ...` -> :func:`lightning_dfd.cli.main`."""

from lightning_dfd.cli import main

if __name__ == "__main__":
    main()
