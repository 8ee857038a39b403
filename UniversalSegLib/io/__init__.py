"""Image reading and segmentation writing (SimpleITK, Slicer .seg.nrrd), all outputs atomic."""

from __future__ import annotations

from UniversalSegLib.io.atomic import OutputExistsError, atomic_output, atomic_write_text
from UniversalSegLib.io.errors import ImageReadError
from UniversalSegLib.io.intensity import check_ct_intensity
from UniversalSegLib.io.labelmap_writer import write_labelmap
from UniversalSegLib.io.masks_writer import write_masks
from UniversalSegLib.io.read_image import read_image
from UniversalSegLib.io.segmentation_nrrd import SegmentInfo, write_segmentation_nrrd

__all__ = [
    "ImageReadError",
    "OutputExistsError",
    "SegmentInfo",
    "atomic_output",
    "atomic_write_text",
    "check_ct_intensity",
    "read_image",
    "write_labelmap",
    "write_masks",
    "write_segmentation_nrrd",
]
