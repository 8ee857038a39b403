"""Errors raised by the image readers."""

from __future__ import annotations


class ImageReadError(ValueError):
    """An input image cannot be used: missing, unreadable, or not a single 3D volume."""
