"""Exit codes of the ``universalseg`` command and the error type that carries them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit status."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    INPUT = 3
    OUTPUT = 4
    WEIGHTS = 5
    SOME_INPUTS_FAILED = 6
    CANCELLED = 130


EXIT_CODES_HELP = """exit codes:
  0    success
  1    unexpected error (run with --verbose for the traceback)
  2    usage error or bad option value (unknown class, bad extension, ...)
  3    input image missing, unreadable or unusable
  4    output exists (pass --overwrite) or cannot be written
  5    weights problem: download failed, checksum mismatch, license not accepted, bad checkpoint
  6    batch finished, but some inputs failed (listed in the log and the manifest)
  130  cancelled (Ctrl+C / SIGTERM); no partial output is left"""


class CliError(Exception):
    """A failure with a user-facing message and an exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        self.code = code


class CancelledRun(Exception):  # noqa: N818 (not an error: the user asked for it)
    """The user cancelled the run (signal or Ctrl+C)."""


@contextlib.contextmanager
def fail_with(
    code: ExitCode, prefix: str, errors: tuple[type[BaseException], ...] = (Exception,)
) -> Iterator[None]:
    """Turn ``errors`` raised in the block into :class:`CliError` with ``code`` and ``prefix: message``.

    :class:`CliError`, :class:`CancelledRun` and cancellation exceptions pass through unchanged.
    """
    try:
        yield
    except (CliError, CancelledRun):
        raise
    except errors as exc:
        if is_cancellation(exc):
            raise CancelledRun(str(exc)) from exc
        message = str(exc) or type(exc).__name__
        raise CliError(f"{prefix}: {message}" if prefix else message, code) from exc


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the library's "cancelled" exceptions (or Ctrl+C)."""
    return isinstance(exc, KeyboardInterrupt) or type(exc).__name__ in (
        "SegmentationCancelled",
        "DownloadCancelledError",
    )
