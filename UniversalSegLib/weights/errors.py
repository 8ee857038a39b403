"""Errors raised by the weights manager (downloads, checksums, licenses, cache)."""

from __future__ import annotations


class WeightsError(Exception):
    """Base class: something is wrong with a downloadable item (weights or sample data)."""


class UnknownWeightsError(WeightsError, KeyError):
    """The name is not in the weights catalog."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DownloadError(WeightsError):
    """A download failed (offline, unreachable URL, HTTP error, interrupted too often)."""


class ChecksumError(DownloadError):
    """A downloaded or imported file does not have the expected sha256 or size."""


class DownloadCancelledError(WeightsError):
    """The download was cancelled; the partial ``.part`` file is kept so it can resume."""


class LicenseNotAcceptedError(WeightsError):
    """The item's license has to be accepted once before it is downloaded."""


class WeightsNotFoundError(WeightsError, FileNotFoundError):
    """The item is not in the cache and downloading was not allowed."""
