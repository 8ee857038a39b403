"""Read a ``.seg.nrrd`` with Slicer's segmentation storage node, safely and away from the user's scene.

The file is checked first: Slicer's NRRD reader ends the whole process (an uncaught ITK exception) on
a truncated gzip stream, so an incomplete file is refused here with a clear message instead. The read
itself happens in a private scene; the caller gets the ``vtkSegmentation`` with the file's shared
labelmap layers, and the user's scene is untouched until the caller puts it there.
"""

from __future__ import annotations

import math
import os
import struct
from typing import Any

_TYPE_NAMES: dict[int, str] = {
    1: "uchar|unsigned char|uint8|uint8_t|signed char|int8|int8_t",
    2: "short|short int|signed short|signed short int|int16|int16_t|ushort|unsigned short|"
    "unsigned short int|uint16|uint16_t",
    4: "int|signed int|int32|int32_t|uint|unsigned int|uint32|uint32_t|float",
    8: "longlong|long long|long long int|signed long long|signed long long int|int64|int64_t|ulonglong|"
    "unsigned long long|unsigned long long int|uint64|uint64_t|double",
}
#: Bytes per voxel component of the NRRD ``type`` names (teem's spellings).
NRRD_TYPE_BYTES: dict[str, int] = {
    name: size for size, names in _TYPE_NAMES.items() for name in names.split("|")
}
MAX_HEADER_BYTES = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"


class SegmentationFileError(RuntimeError):
    """A segmentation file that exists but cannot be read."""


def read_segmentation_file(path: str | os.PathLike) -> Any:
    """Read a ``.seg.nrrd`` with ``vtkMRMLSegmentationStorageNode`` in a private scene.

    Returns:
        The file's ``vtkSegmentation`` (layers shared as in the file), owned by no node of any scene.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        SegmentationFileError: the file is incomplete or not a segmentation.
    """
    import slicer

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Segmentation result not found: {path}. Run the segmentation again.")
    check_complete_nrrd(path)
    scene = slicer.vtkMRMLScene()  # private: no observer of the user's scene sees the read
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage.SetFileName(path)
    if not storage.ReadData(node):
        details = storage.GetUserMessages().GetAllMessagesAsString().strip()
        raise SegmentationFileError(
            f"Could not read the segmentation result {path}: it is not a Slicer segmentation file. "
            f"Run the segmentation again.{(' Details: ' + details) if details else ''}"
        )
    segmentation = node.GetSegmentation()
    node.SetAndObserveSegmentation(None)  # hand it over: the private scene goes away with this function
    return segmentation


def check_complete_nrrd(path: str | os.PathLike) -> None:
    """Refuse a NRRD file whose voxel data is cut short (raw: too few bytes; gzip: wrong size in its trailer).

    Files that are not NRRD, or whose encoding or type cannot be checked cheaply, pass: the storage node
    reports those itself.

    Raises:
        SegmentationFileError: the header promises more voxel data than the file holds.
    """
    header, data_offset = _nrrd_header(path)
    if header is None or "data file" in header or "datafile" in header:
        return
    expected = _expected_data_bytes(header)
    encoding = header.get("encoding", "")
    if expected is None:
        return
    size = os.path.getsize(path)
    if encoding == "raw":
        complete = size - data_offset >= expected
    elif encoding in ("gzip", "gz"):
        complete = _gzip_size_matches(path, data_offset, size, expected)
    else:
        return
    if not complete:
        raise SegmentationFileError(
            f"The segmentation result {path} is incomplete (its voxel data is cut short). "
            "Run the segmentation again, and check that the disk has free space."
        )


def _nrrd_header(path: str | os.PathLike) -> tuple[dict[str, str] | None, int]:
    """NRRD header fields (lower-case keys, key-value pairs skipped) and the offset of the data.

    ``(None, 0)`` for a file that is not NRRD (or has an implausibly long header).
    """
    fields: dict[str, str] = {}
    with open(path, "rb") as file:
        if file.read(4) != b"NRRD":
            return None, 0
        file.readline()
        while True:
            line = file.readline(MAX_HEADER_BYTES)
            if not line:
                raise SegmentationFileError(
                    f"The segmentation result {path} is incomplete (it ends inside its header). "
                    "Run the segmentation again, and check that the disk has free space."
                )
            if file.tell() > MAX_HEADER_BYTES:
                return None, 0
            text = line.decode("latin-1").rstrip("\r\n")
            if not text:
                return fields, file.tell()
            if text.startswith("#") or ":=" in text or ":" not in text:
                continue
            key, value = text.split(":", 1)
            fields[key.strip().lower()] = value.strip()


def _expected_data_bytes(header: dict[str, str]) -> int | None:
    type_bytes = NRRD_TYPE_BYTES.get(" ".join(header.get("type", "").lower().split()))
    try:
        sizes = [int(value) for value in header.get("sizes", "").split()]
    except ValueError:
        return None
    if type_bytes is None or not sizes:
        return None
    return type_bytes * math.prod(sizes)


def _gzip_size_matches(path: str | os.PathLike, data_offset: int, size: int, expected: int) -> bool:
    """Whether the gzip stream starts with its magic and its trailer records ``expected`` bytes (mod 2^32)."""
    if size - data_offset < 18:  # gzip header (10) + trailer (8)
        return False
    with open(path, "rb") as file:
        file.seek(data_offset)
        if file.read(2) != GZIP_MAGIC:
            return False
        file.seek(size - 4)
        (recorded,) = struct.unpack("<I", file.read(4))
    return recorded == expected % (1 << 32)
