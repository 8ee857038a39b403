"""The inputs of a batch (paths, folders, a list file) and the output file each one gets.

Rule for folders, decided by their content (not recursive beyond one level):

* a folder that directly holds DICOM files (``.dcm``, or the ``DICM`` marker at byte 128) is **one**
  input, a DICOM series, exactly as a single ``CT_INPUT`` folder always was;
* otherwise each CT image file in it (NIfTI, NRRD, MetaImage; hidden files and ``.seg.nrrd`` Slicer
  segmentations are left out) and each subfolder that directly holds DICOM files is one input;
* a folder with neither is read as one DICOM series (and fails with the reader's message).

Inputs are sorted by absolute path (the order every rank of a distributed run shards). Output names come
from the input names (a DICOM series folder gives its folder name); names that collide (case-insensitive)
get ``_2``, ``_3``, ... in that order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from UniversalSegLib.cli.exit_codes import CliError, ExitCode

logger = logging.getLogger("UniversalSegLib.cli")

CT_FILE_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")
#: ``--output-format`` choices (the output file's extension without the leading dot).
OUTPUT_FORMATS: tuple[str, ...] = ("seg.nrrd", "nii.gz", "nrrd", "mha")
SEGMENTATION_SUFFIX = ".seg.nrrd"
_DICOM_MARKER_OFFSET = 128
_DICOM_MARKER = b"DICM"


@dataclass(frozen=True)
class BatchItem:
    """One input of a batch and the output file it is written to."""

    input: Path
    output: Path


def is_ct_file(path: Path) -> bool:
    """A NIfTI/NRRD/MetaImage file that is not hidden and not a Slicer segmentation."""
    name = path.name.lower()
    if name.startswith(".") or name.endswith(SEGMENTATION_SUFFIX) or not path.is_file():
        return False
    return name.endswith(CT_FILE_EXTENSIONS)


def holds_dicom_files(folder: Path) -> bool:
    """Whether ``folder`` directly holds a DICOM file (``.dcm`` or the ``DICM`` marker at byte 128)."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return False
    for entry in entries:
        if entry.name.startswith(".") or is_ct_file(entry) or not entry.is_file():
            continue
        if entry.suffix.lower() == ".dcm" or _has_dicom_marker(entry):
            return True
    return False


def _has_dicom_marker(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            handle.seek(_DICOM_MARKER_OFFSET)
            return handle.read(len(_DICOM_MARKER)) == _DICOM_MARKER
    except OSError:
        return False


def folder_inputs(folder: Path) -> list[Path] | None:
    """The inputs a batch folder holds, or None when ``folder`` is one DICOM series (see the module rule)."""
    if holds_dicom_files(folder):
        return None
    entries = sorted(folder.iterdir())
    found = [entry for entry in entries if is_ct_file(entry)]
    found += [entry for entry in entries if entry.is_dir() and holds_dicom_files(entry)]
    return found or None


def read_input_list(list_file: Path) -> list[Path]:
    """Paths in ``list_file``: one per line, ``#`` starts a comment; relative paths are relative to the
    list file's folder."""
    try:
        text = list_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(
            f"cannot read --input-list {list_file}: {exc.strerror or exc}", ExitCode.INPUT
        ) from exc
    paths = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            path = Path(entry).expanduser()
            paths.append(path if path.is_absolute() else list_file.parent / path)
    return paths


def is_batch_request(inputs: list[str], input_list: str | None, output_format: str | None) -> bool:
    """A batch: several inputs, a list file, ``--output-format``, or one folder that is not a DICOM series."""
    if input_list or output_format or len(inputs) > 1:
        return True
    if len(inputs) == 1:
        path = Path(inputs[0]).expanduser()
        return path.is_dir() and folder_inputs(path) is not None
    return False


def collect_inputs(inputs: list[str], input_list: str | None) -> list[Path]:
    """All inputs, folders expanded, sorted by absolute path, each once.

    Raises:
        CliError: no input found (exit code 3) or none given (exit code 2).
    """
    given = [Path(value).expanduser() for value in inputs]
    if input_list:
        given += read_input_list(Path(input_list).expanduser())
    if not given:
        raise CliError("no input: give one or more CT_INPUT paths or --input-list FILE", ExitCode.USAGE)
    collected: dict[Path, None] = {}
    for path in given:
        expanded = folder_inputs(path) if path.is_dir() else None
        for item in expanded if expanded is not None else [path]:
            collected.setdefault(item.absolute(), None)
    if not collected:
        raise CliError(f"no CT found in {', '.join(map(str, given))}", ExitCode.INPUT)
    return sorted(collected, key=str)


def input_stem(path: Path) -> str:
    """The name an output takes from its input: the file name without its image extension, or the folder
    name of a DICOM series."""
    name = path.name or path.absolute().name
    lower = name.lower()
    for extension in CT_FILE_EXTENSIONS:
        if lower.endswith(extension) and len(name) > len(extension):
            return name[: -len(extension)]
    return Path(name).stem if path.suffix and not path.is_dir() else name


def plan_outputs(inputs: list[Path], folder: Path, output_format: str) -> list[BatchItem]:
    """One output per input in ``folder``; colliding names get ``_2``, ``_3``, ... (logged)."""
    taken: set[str] = set()
    items = []
    for path in inputs:
        stem = input_stem(path)
        name, number = f"{stem}.{output_format}", 1
        while name.lower() in taken:
            number += 1
            name = f"{stem}_{number}.{output_format}"
        if number > 1:
            logger.info("Output name %s is taken by an earlier input; %s is written to %s", stem, path, name)
        taken.add(name.lower())
        items.append(BatchItem(path, folder / name))
    return items
