"""Image reading and segmentation writing (SimpleITK, Slicer .seg.nrrd), all outputs atomic.

Attributes are imported lazily, so that e.g. ``UniversalSegLib.io.atomic`` can be used without
loading the image writers.
"""

from __future__ import annotations

from UniversalSegLib.lazy_exports import lazy_getattr

_LAZY_ATTRIBUTES: dict[str, str] = {
    "ImageReadError": "UniversalSegLib.io.errors",
    "OutputExistsError": "UniversalSegLib.io.atomic",
    "SegmentInfo": "UniversalSegLib.io.segmentation_nrrd",
    "atomic_output": "UniversalSegLib.io.atomic",
    "atomic_write_bytes": "UniversalSegLib.io.atomic",
    "atomic_write_text": "UniversalSegLib.io.atomic",
    "check_ct_intensity": "UniversalSegLib.io.intensity",
    "read_image": "UniversalSegLib.io.image_reader",
    "write_labelmap": "UniversalSegLib.io.labelmap_writer",
    "write_masks": "UniversalSegLib.io.masks_writer",
    "write_segmentation_nrrd": "UniversalSegLib.io.segmentation_nrrd",
}

__all__ = list(_LAZY_ATTRIBUTES)

__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES)
