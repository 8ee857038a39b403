"""Check that a file given to ``weights import`` is the catalog item it is imported as.

A model item must be a checkpoint that loads into the item's backbone (read on the CPU with
``weights_only``, strict key and shape check); a data item (the demo CT) must have the catalog's exact
size, and sha256 when the catalog has one. Anything else is refused with :class:`ImportRefusedError`,
whose message says what the file is and what was expected.
"""

from __future__ import annotations

from pathlib import Path

from UniversalSegLib.weights.cache_usage import format_size
from UniversalSegLib.weights.download import verify_file
from UniversalSegLib.weights.entries import WeightsItem
from UniversalSegLib.weights.errors import ChecksumError, WeightsError

#: Leading bytes of the formats a user may import by mistake, and how to name them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "zip archive (the PyTorch checkpoint format)"),
    (b"\x80", "pickle file (the legacy PyTorch checkpoint format)"),
    (b"\x1f\x8b", "gzip-compressed file"),
    (b"NRRD", "NRRD image"),
    (b"\x89HDF", "HDF5 file"),
)
_SNIFF_BYTES = 4096


class ImportRefusedError(WeightsError, ValueError):
    """The file is not the catalog item it is imported as; nothing was copied into the cache."""


def describe_file(path: Path) -> str:
    """A short description of ``path`` from its size and first bytes, e.g. ``a 77.8 MB zip archive (...)``."""
    size = path.stat().st_size
    if size == 0:
        return "an empty file"
    with path.open("rb") as stream:
        head = stream.read(_SNIFF_BYTES)
    kind = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if kind is None:
        kind = "text file" if _is_text(head) else "binary file of unknown type"
    return f"a {format_size(size)} {kind}"


def check_importable(item: WeightsItem, source: Path) -> str:
    """Refuse ``source`` unless it is a valid file for ``item``; returns its sha256.

    Raises:
        ImportRefusedError: wrong size or sha256, not a loadable checkpoint, or a checkpoint of another
            backbone. The message names the file, what it is and what was expected.
    """
    try:
        digest = verify_file(source, item.sha256, item.size)
    except ChecksumError as exc:
        raise _refusal(item, source, describe_file(source), _expected_bytes(item), str(exc)) from exc
    if item.kind == "model":
        _check_checkpoint(item, source)
    return digest


def _check_checkpoint(item: WeightsItem, source: Path) -> None:
    from UniversalSegLib.weights.checkpoint import CheckpointError, build_model, read_checkpoint

    expected = f"{item.description or item.name} ({item.file_name})"
    try:
        loaded = read_checkpoint(source)
    except CheckpointError as exc:
        raise _refusal(item, source, describe_file(source), expected, _reason(exc, source)) from exc
    found = f"a {format_size(source.stat().st_size)} checkpoint of a {loaded.backbone!r} model"
    if item.backbone is not None and loaded.backbone != item.backbone:
        reason = f"Import it as {loaded.backbone!r} if that is what you meant."
        raise _refusal(item, source, found, expected, reason)
    try:
        build_model(loaded)  # strict: every key of the model, with the right shape
    except CheckpointError as exc:
        raise _refusal(item, source, found, expected, _reason(exc, source)) from exc


def _refusal(item: WeightsItem, source: Path, found: str, expected: str, reason: str) -> ImportRefusedError:
    return ImportRefusedError(
        f"refused to import {source} as {item.name!r}: it is {found}; expected {expected}.\n"
        f"{reason}\nNothing was copied into the cache."
    )


def _expected_bytes(item: WeightsItem) -> str:
    checksum = f" with sha256 {item.sha256}" if item.sha256 else ""
    size = f"{item.size} bytes" if item.size is not None else "a file"
    return f"{item.file_name}: {item.description or item.name}, {size}{checksum}"


def _reason(error: Exception, source: Path) -> str:
    message = str(error)
    prefix = f"{source}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # a multi-byte character cut at the end of the sample
    return True
