"""Errors a person can act on: ``python -m lightning_dfd`` prints them as one line (no traceback).

Raise a :class:`UserError` (or a subclass) when the input is wrong and the message names the file or key and the
fix; the entry point prints ``error: <message>`` and exits with status 1. ``--debug`` (or
``LIGHTNING_DFD_DEBUG=1``) shows the traceback instead. Kept free of heavy imports: the entry point loads it first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEBUG_ENV = "LIGHTNING_DFD_DEBUG"


class UserError(Exception):
    """Bad input (a config value, a file, a checkpoint); the message says what and how to fix it."""


class InvalidCheckpointError(UserError):
    """A checkpoint file that cannot be read: truncated, damaged or not a lightning-dfd checkpoint."""

    def __init__(self, path: str) -> None:
        super().__init__(f"not a valid checkpoint: {path} (truncated or not a lightning-dfd checkpoint)")
        self.path = path


class MissingCheckpointError(UserError):
    """``--ckpt_path last`` found no checkpoint to resume from."""


class ConfigValueError(UserError):
    """A class named in the config refused its arguments (its ``__init__`` raised ``ValueError``)."""


def debug_enabled() -> bool:
    """True when tracebacks were asked for (``--debug`` sets the variable too)."""
    return os.environ.get(DEBUG_ENV, "").lower() in ("1", "true", "yes")


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types printed as one line: ours, the manifest's and missing files."""
    from lightning_dfd.data.manifest import ManifestError
    from lightning_dfd.models.backbones import PretrainedWeightsError

    return UserError, ManifestError, PretrainedWeightsError, FileNotFoundError, NotADirectoryError


def find_user_error(error: BaseException | None) -> BaseException | None:
    """The first user error in ``error``'s chain (``__cause__`` / ``__context__``), e.g. inside a jsonargparse error."""
    types = user_error_types()
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, types):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def one_line(error: BaseException) -> str:
    """``error: <message>`` on a single line, whitespace runs collapsed."""
    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, FileNotFoundError | NotADirectoryError) and error.filename and str(error.filename) not in text:
        text = f"{text}: {error.filename}"
    return f"error: {text}"


def run_reporting_user_errors(function: Callable[[], T]) -> T:
    """``function()``; a user error anywhere in a raised exception's chain becomes its one line on stderr and exit
    status 1 (the traceback only under ``--debug`` / ``LIGHTNING_DFD_DEBUG=1``)."""
    try:
        return function()
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None or debug_enabled():
            raise
        sys.stderr.write(one_line(user_error) + "\n")
        raise SystemExit(1) from None
