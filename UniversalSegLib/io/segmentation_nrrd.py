"""Write class masks as a 3D Slicer segmentation file (.seg.nrrd), overlaps kept in layers.

Segments share a layer (a labelmap with one value per segment) where they do not overlap, and
go to a further layer where they do, as Slicer does; the file is written by ``slicerio``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)
import slicerio

from UniversalSegLib.io.atomic import atomic_output, check_output_path
from UniversalSegLib.io.class_lookup import class_label
from UniversalSegLib.io.grid import bounding_box, ijk_to_lps, mask_array, reference_grid

#: gzip level: masks compress well at any level, and low levels are much faster on big volumes.
COMPRESSION_LEVEL = 1
_EMPTY_EXTENT = [0, -1, 0, -1, 0, -1]


@dataclass(frozen=True)
class SegmentInfo:
    """How one class appears in Slicer.

    Attributes:
        segment_id: stable segment ID (the class key, e.g. ``"liver"``).
        name: segment name shown in Slicer.
        color: RGB, either 0..255 integers or 0..1 floats.
        terminology: Slicer TerminologyEntry string (``context~category~type~...``), or None.
    """

    segment_id: str
    name: str
    color: tuple[float, float, float]
    terminology: str | None = None

    @classmethod
    def from_catalog(cls, index: int) -> SegmentInfo:
        label = class_label(index)
        return cls(label.key, label.name, label.color, label.terminology)

    def color_01(self) -> list[float]:
        """Colour as 0..1 floats, as stored in .seg.nrrd files."""
        scale = 255.0 if max(self.color) > 1 else 1.0
        return [round(float(c) / scale, 6) for c in self.color]


def write_segmentation_nrrd(
    masks: Mapping[int, sitk.Image],
    path: str | os.PathLike,
    classes_info: Mapping[int, SegmentInfo] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write one Slicer segment per class; overlapping segments go to separate layers.

    Args:
        masks: class index -> binary mask (non-zero = inside); all on one grid.
        path: output ``.seg.nrrd`` file.
        classes_info: per-class segment ID/name/colour/terminology; classes missing here come from
            the class catalog.
        overwrite: replace an existing file.

    Returns:
        The written path. Space directions/origin are the masks' geometry in LPS.

    Raises:
        ValueError: not a .nrrd path, masks on different grids, or duplicate segment IDs.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if not path.name.lower().endswith(".nrrd"):
        raise ValueError(f"A Slicer segmentation file must end in .seg.nrrd, got {path.name}.")
    check_output_path(path, overwrite)
    reference = reference_grid(masks)
    infos = [(classes_info or {}).get(index) or SegmentInfo.from_catalog(index) for index in sorted(masks)]
    if len({info.segment_id for info in infos}) != len(infos):
        raise ValueError(f"Segment IDs must be unique, got {[info.segment_id for info in infos]}.")
    layers = _Layers(reference.GetSize()[::-1])
    segments = [
        {**_segment_fields(info), **layers.place(mask_array(masks[index]))}
        for index, info in zip(sorted(masks), infos, strict=True)
    ]
    # slicerio wants voxels indexed [layer,] i, j, k and writes them in Fortran order: the transposed
    # C-ordered (z, y, x[, layer]) array is already laid out that way, so no copy is made.
    segmentation = {
        "voxels": layers.stacked_zyx().T,
        "ijkToLPS": ijk_to_lps(reference),
        "segments": segments,
        "masterRepresentation": "Binary labelmap",
        "containedRepresentationNames": ["Binary labelmap"],
        "referenceImageExtentOffset": [0, 0, 0],
    }
    with atomic_output(path, overwrite) as temporary:
        slicerio.write_segmentation(str(temporary), segmentation, compression_level=COMPRESSION_LEVEL)
    return path


class _Layers:
    """Labelmap layers, (z, y, x) uint8 each, and the next free label value in each."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = shape
        self.arrays: list[np.ndarray] = []
        self.next_label: list[int] = []

    def add(self) -> int:
        self.arrays.append(np.zeros(self.shape, np.uint8))
        self.next_label.append(1)
        return len(self.arrays) - 1

    def stacked_zyx(self) -> np.ndarray:
        """(z, y, x) for one layer, else (z, y, x, layer)."""
        if not self.arrays:
            self.add()
        return self.arrays[0] if len(self.arrays) == 1 else np.stack(self.arrays, axis=-1)

    def first_free(self, box: tuple[slice, ...], inside: np.ndarray) -> int:
        """Index of the first layer with a free label and no voxel under ``inside``; adds one if none."""
        for index, layer in enumerate(self.arrays):
            if self.next_label[index] <= np.iinfo(np.uint8).max and not layer[box][inside].any():
                return index
        return self.add()

    def place(self, mask: np.ndarray) -> dict:
        """Paint ``mask``; return the segment's ``layer``, ``labelValue`` and ``extent`` (i, j, k) fields."""
        box = bounding_box(mask)
        if box is None:
            index = 0 if self.arrays else self.add()
            extent = _EMPTY_EXTENT
        else:
            inside = mask[box]
            index = self.first_free(box, inside)
            self.arrays[index][box][inside] = self.next_label[index]
            extent = [bound for axis in (2, 1, 0) for bound in (box[axis].start, box[axis].stop - 1)]
        label_value = self.next_label[index]
        self.next_label[index] += 1
        return {"layer": index, "labelValue": label_value, "extent": extent}


def _segment_fields(info: SegmentInfo) -> dict:
    fields: dict = {
        "id": info.segment_id,
        "name": info.name,
        "color": info.color_01(),
        "nameAutoGenerated": False,
        "colorAutoGenerated": False,
    }
    if info.terminology:
        fields["tags"] = {"TerminologyEntry": info.terminology}  # written verbatim
    return fields
