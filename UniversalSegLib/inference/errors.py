"""Exceptions raised by the inference engine."""

from __future__ import annotations


class InferenceError(ValueError):
    """The input or the options cannot be segmented (the message says what to change)."""


class SegmentationCancelled(RuntimeError):  # noqa: N818 - public name fixed by the API
    """The run was cancelled through its ``threading.Event``."""
