"""Resumable HTTP(S) downloads with urllib: ``.part`` file, HTTP Range resume, sha256 check, atomic rename.

Policy: the bytes go to ``<destination>.part``. A dropped connection is retried with a
``Range: bytes=<n>-`` request that appends to the ``.part`` file (also across runs: an interrupted
download resumes the next time). When the transfer is complete, the size and sha256 are checked; on a
mismatch **both** the ``.part`` file and any destination are left absent (the bytes are useless, and
resuming them would give the same wrong file), and :class:`ChecksumError` is raised. Only a verified
file is renamed (atomically) to ``destination``.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from UniversalSegLib.weights.errors import ChecksumError, DownloadCancelledError, DownloadError

logger = logging.getLogger(__name__)

#: ``on_bytes(done, total)``; total is ``None`` when the server does not say.
BytesCallback = Callable[[int, "int | None"], None]

CHUNK_SIZE = 1 << 20
USER_AGENT = "UniversalSeg (python urllib)"


class _TransferInterruptedError(Exception):
    """The connection dropped after some bytes arrived; resuming may help."""


def part_path(destination: Path) -> Path:
    """The partial file a download of ``destination`` writes to."""
    return destination.with_name(destination.name + ".part")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, sha256: str | None, size: int | None) -> str:
    """Check ``path`` against the expected size and sha256 (when known); returns its sha256.

    Raises:
        ChecksumError: the size or sha256 differs.
    """
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise ChecksumError(f"{path.name}: expected {size} bytes, got {actual_size}")
    digest = sha256_of(path)
    if sha256 is not None and digest != sha256.lower():
        raise ChecksumError(f"{path.name}: sha256 mismatch: expected {sha256}, got {digest}")
    return digest


def download_file(
    url: str,
    destination: Path,
    *,
    sha256: str | None = None,
    size: int | None = None,
    on_bytes: BytesCallback | None = None,
    cancel: threading.Event | None = None,
    retries: int = 3,
    retry_delay: float = 1.0,
    timeout: float = 30.0,
) -> str:
    """Download ``url`` to ``destination`` (see the module docstring for the policy).

    Args:
        url: http(s) or file URL.
        destination: final path; its folder must exist.
        sha256: expected hex digest, or ``None`` to skip the check.
        size: expected size in bytes, or ``None``.
        on_bytes: called with (bytes done, total) as data arrives.
        cancel: when set, the download stops with :class:`DownloadCancelledError` (``.part`` kept).
        retries: how many times a dropped connection is resumed within this call.
        retry_delay: seconds to wait before a resume, times the attempt number.
        timeout: socket timeout in seconds.

    Returns:
        The sha256 of the downloaded file.

    Raises:
        DownloadError: unreachable URL, HTTP error, or too many interruptions.
        ChecksumError: the file arrived but is not the expected one (nothing is left behind).
        DownloadCancelledError: ``cancel`` was set.
    """
    partial = part_path(destination)
    attempt = 0
    while True:
        try:
            _fetch_into(url, partial, size, on_bytes, cancel, timeout)
            break
        except _TransferInterruptedError as exc:
            attempt += 1
            if attempt > retries:
                raise DownloadError(
                    f"download of {url} was interrupted {attempt} times ({exc}); "
                    f"run the command again to resume from {partial}"
                ) from exc
            have = partial.stat().st_size if partial.exists() else 0
            logger.warning(
                "Connection lost (%s); resuming at byte %d (attempt %d/%d)", exc, have, attempt, retries
            )
            time.sleep(retry_delay * attempt)
    try:
        digest = verify_file(partial, sha256, size)
    except ChecksumError as exc:
        partial.unlink(missing_ok=True)
        raise ChecksumError(f"{exc} (downloaded from {url}); the file was deleted") from None
    os.replace(partial, destination)
    return digest


def _fetch_into(
    url: str,
    partial: Path,
    size: int | None,
    on_bytes: BytesCallback | None,
    cancel: threading.Event | None,
    timeout: float,
) -> None:
    """One HTTP request that appends to (or restarts) ``partial``; returns when the body is complete."""
    offset = partial.stat().st_size if partial.exists() else 0
    if size is not None and offset > size:
        partial.unlink()
        offset = 0
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (catalog URLs)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # range not satisfiable: the .part may already be complete
            if size is None or offset == size:
                return
            partial.unlink()
            raise _TransferInterruptedError("server refused to resume; restarting") from exc
        raise DownloadError(f"HTTP error {exc.code} ({exc.reason}) for {url}") from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"cannot reach {url}: {reason}") from exc

    with response:
        status = getattr(response, "status", 200)
        if offset and status == 206 and _content_range_start(response) == offset:
            mode = "ab"
        else:
            if offset:
                logger.info("Server did not resume the transfer; downloading %s from the start", url)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        expected_body = int(length) if length and length.isdigit() else None
        total = offset + expected_body if expected_body is not None else size
        received = 0
        with open(partial, mode) as stream:
            if on_bytes is not None:
                on_bytes(offset, total)
            while True:
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelledError(f"download of {url} cancelled; {partial} is kept to resume")
                try:
                    chunk = response.read(CHUNK_SIZE)
                except (OSError, ValueError, http.client.HTTPException) as exc:  # reset, timeout, short read
                    raise _TransferInterruptedError(str(exc) or type(exc).__name__) from exc
                if not chunk:
                    break
                stream.write(chunk)
                received += len(chunk)
                if on_bytes is not None:
                    on_bytes(offset + received, total)
    if expected_body is not None and received < expected_body:
        raise _TransferInterruptedError(f"connection closed after {offset + received} of {total} bytes")


def _content_range_start(response) -> int | None:
    """First byte position of a ``Content-Range: bytes a-b/c`` header, or ``None``."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None
