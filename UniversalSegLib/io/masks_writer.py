"""Write one binary NIfTI file per class."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.io.atomic import atomic_output, check_output_path
from UniversalSegLib.io.class_lookup import class_label
from UniversalSegLib.io.grid import reference_grid


def write_masks(
    masks: Mapping[int, sitk.Image],
    folder: str | os.PathLike,
    overwrite: bool = False,
    extension: str = ".nii.gz",
) -> dict[int, Path]:
    """Write ``<folder>/<class key><extension>`` (uint8 0/1) for each class.

    All target files are checked before anything is written, so an existing file stops the
    whole write instead of leaving a half-written set.

    Returns:
        class index -> written path.

    Raises:
        OutputExistsError: a target file exists and ``overwrite`` is false.
        ValueError: masks on different grids.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"Output folder {folder} is a file; give a folder path.")
    reference_grid(masks)
    targets = {index: folder / f"{class_label(index).key}{extension}" for index in sorted(masks)}
    for target in targets.values():
        check_output_path(target, overwrite)
    for index, target in targets.items():
        binary = sitk.Cast(sitk.NotEqual(masks[index], 0), sitk.sitkUInt8)
        with atomic_output(target, overwrite) as temporary:
            sitk.WriteImage(binary, str(temporary), useCompression=True)
    return targets
