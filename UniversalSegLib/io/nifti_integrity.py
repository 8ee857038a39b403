"""Detect truncated NIfTI files, which ITK's NIfTI reader silently zero-fills instead of failing."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from UniversalSegLib.io.errors import ImageReadError

_NIFTI1_HEADER_SIZE = 348
_NIFTI2_HEADER_SIZE = 540
_CHUNK_BYTES = 1 << 22


def is_nifti(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".nii", ".nii.gz"))


def check_nifti_complete(path: Path) -> None:
    """Raise :class:`ImageReadError` if ``path`` holds fewer voxel bytes than its header declares.

    Reads the header (NIfTI-1 or -2, either byte order) for the data offset, the dimensions and
    the bits per voxel, then counts the stored bytes (streaming through gzip for ``.nii.gz``).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(_NIFTI2_HEADER_SIZE)
            expected = _expected_file_bytes(header, path)
            available = len(header)
            while available < expected:
                chunk = stream.read(min(_CHUNK_BYTES, expected - available))
                if not chunk:
                    break
                available += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise ImageReadError(f"Could not read {path}: the file is corrupt or truncated ({error}).") from error
    if available < expected:
        raise ImageReadError(
            f"Could not read {path}: the file is truncated ({available} of {expected} bytes); "
            "copy or export it again."
        )


def _expected_file_bytes(header: bytes, path: Path) -> int:
    """vox_offset + voxel bytes, from the NIfTI header."""
    for order in ("<", ">"):
        header_size = struct.unpack(order + "i", header[:4])[0] if len(header) >= 4 else 0
        if header_size == _NIFTI1_HEADER_SIZE:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            vox_offset = int(struct.unpack(order + "f", header[108:112])[0])
            return _total(vox_offset, dims, bitpix)
        if header_size == _NIFTI2_HEADER_SIZE and len(header) >= _NIFTI2_HEADER_SIZE:
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            dims = struct.unpack(order + "8q", header[16:80])
            vox_offset = struct.unpack(order + "q", header[168:176])[0]
            return _total(vox_offset, dims, bitpix)
    raise ImageReadError(f"Could not read {path}: it has no valid NIfTI header (corrupt or not NIfTI).")


def _total(vox_offset: int, dims: tuple[int, ...], bitpix: int) -> int:
    count = 1
    for size in dims[1 : max(1, min(int(dims[0]), 7)) + 1]:
        count *= max(int(size), 1)
    return max(vox_offset, 0) + count * max(int(bitpix), 0) // 8
