"""Exceptions raised by the inference engine."""

from __future__ import annotations

import importlib
from types import ModuleType


class InferenceError(ValueError):
    """The input or the options cannot be segmented (the message says what to change)."""


class SegmentationCancelled(RuntimeError):  # noqa: N818 - public name fixed by the API
    """The run was cancelled through its ``threading.Event``."""


def import_optional(module: str, missing: str) -> ModuleType:
    """Import the optional package ``module``, or raise :class:`InferenceError` with the ``missing`` message
    (which says how to install it or what to choose instead)."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InferenceError(missing) from error
