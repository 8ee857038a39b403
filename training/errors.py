"""The error every entry point reports as one line (exit status 2) instead of a traceback."""

from __future__ import annotations


class ConfigError(ValueError):
    """The training configuration or one of its inputs is invalid; the message says what to fix."""


def brief(error: BaseException, limit: int = 160) -> str:
    """The first line of an error message, shortened (library errors can run to many lines)."""
    lines = str(error).strip().splitlines()
    first = lines[0] if lines else ""
    return f"{type(error).__name__}: {first[:limit]}{'...' if len(first) > limit or len(lines) > 1 else ''}"
