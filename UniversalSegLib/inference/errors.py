"""Exceptions raised by the inference engine."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType


class InferenceError(ValueError):
    """The input or the options cannot be segmented (the message says what to change)."""


class SegmentationCancelled(RuntimeError):  # noqa: N818 - public name fixed by the API
    """The run was cancelled through its ``threading.Event``."""


def error_summary(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (cut to ``limit`` characters): an error in a one-line warning."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:limit] if text else 'no message'}"


def optional_package_installed(module: str) -> bool:
    """Whether the optional package ``module`` is installed, without importing it (nor torch or MONAI)."""
    return importlib.util.find_spec(module) is not None


def import_optional(module: str, missing: str) -> ModuleType:
    """Import the optional package ``module``, or raise :class:`InferenceError` with the ``missing`` message
    (which says how to install it or what to choose instead).

    Third-party usage telemetry (OpenVINO, NNCF) is switched off first
    (:func:`~UniversalSegLib.privacy.disable_third_party_telemetry`)."""
    from ..privacy import disable_third_party_telemetry

    disable_third_party_telemetry()
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise InferenceError(missing) from error
