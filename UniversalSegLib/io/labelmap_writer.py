"""Write several binary class masks as one multi-label uint8 labelmap (value = class index)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.io.atomic import atomic_output, check_output_path, file_extension
from UniversalSegLib.io.class_lookup import default_overlap_priority
from UniversalSegLib.io.grid import mask_array, reference_grid

LABELMAP_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha")


def write_labelmap(
    masks: Mapping[int, sitk.Image],
    path: str | os.PathLike,
    overlap_priority: Sequence[int] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``masks`` as one uint8 labelmap where each voxel holds its class index (0 = background).

    Args:
        masks: class index (1..255) -> binary mask (non-zero = inside); all on one grid.
        path: output file; the format follows the extension (.nii.gz, .nii, .nrrd, .mha).
        overlap_priority: class indices from highest to lowest precedence where masks overlap;
            classes not listed rank below the listed ones. Default: tumors/cysts, then vessels,
            then the rest (see :func:`default_overlap_priority`).
        overwrite: replace an existing file.

    Returns:
        The written path. The labelmap has exactly the masks' size, spacing, origin and direction.

    Raises:
        ValueError: unsupported extension, label out of range, or masks on different grids.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    extension = file_extension(path)
    if extension not in LABELMAP_EXTENSIONS:
        raise ValueError(
            f"Cannot write a labelmap to {path.name}: use one of {', '.join(LABELMAP_EXTENSIONS)}."
        )
    check_output_path(path, overwrite)
    reference = reference_grid(masks)
    for index in masks:
        if not 1 <= int(index) <= 255:
            raise ValueError(f"Class index {index} does not fit a uint8 labelmap (1..255).")
    labels = labelmap_array(masks, _full_priority(masks, overlap_priority))
    labelmap = sitk.GetImageFromArray(labels)
    labelmap.CopyInformation(reference)
    with atomic_output(path, overwrite) as temporary:
        sitk.WriteImage(labelmap, str(temporary), useCompression=True)
    return path


def labelmap_array(masks: Mapping[int, sitk.Image], priority: Sequence[int]) -> np.ndarray:
    """(z, y, x) uint8 array; ``priority`` lists indices from highest to lowest precedence."""
    reference = next(iter(masks.values()))
    labels = np.zeros(reference.GetSize()[::-1], dtype=np.uint8)
    for index in reversed(priority):  # paint lowest precedence first; later paints win
        labels[mask_array(masks[index])] = index
    return labels


def _full_priority(masks: Mapping[int, sitk.Image], overlap_priority: Sequence[int] | None) -> list[int]:
    if overlap_priority is None:
        return default_overlap_priority(list(masks))
    listed = [int(index) for index in dict.fromkeys(overlap_priority) if index in masks]
    rest = [index for index in default_overlap_priority(list(masks)) if index not in listed]
    return listed + rest
