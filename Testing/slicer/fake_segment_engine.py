"""A stand-in engine: reads the exported CT, writes a .seg.nrrd of thresholded "liver" and "liver tumor".

Usage: ``python fake_segment_engine.py INPUT OUTPUT``. Bright voxels (> 100 HU) are "liver"; the
brightest (> 300 HU) are also "liver tumor", so the two overlap.
"""

from __future__ import annotations

import sys

import SimpleITK as sitk  # noqa: N813

from UniversalSegLib.io import write_segmentation_nrrd
from UniversalSegLib.progress import ProgressEvent

input_path, output_path = sys.argv[1], sys.argv[2]
print(ProgressEvent("load", 1, 1).to_json_line(), flush=True)
image = sitk.ReadImage(input_path)
print(f"read {image.GetSize()}", flush=True)
liver = sitk.Cast(image > 100, sitk.sitkUInt8)
tumor = sitk.Cast(image > 300, sitk.sitkUInt8)
print(ProgressEvent("write", 0, 1).to_json_line(), flush=True)
write_segmentation_nrrd({6: liver, 27: tumor}, output_path, overwrite=True)
print(ProgressEvent("done", 1, 1).to_json_line(), flush=True)
