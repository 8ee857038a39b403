"""Masks on the cropped 1.5 mm RAS grid back onto the input image's grid (nearest neighbour).

The official pipeline wrote the original voxel array with the 1.5 mm header (MODEL_SPEC §3, quirk);
here the masks are resampled in physical space, so they carry exactly the input's size, spacing, origin
and direction, whatever its orientation.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813

from .geometry import sitk_from_array_xyz


def mask_to_input_grid(mask: np.ndarray, affine: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Resample an (x, y, z) mask with RAS ``affine`` onto ``reference``'s grid.

    Returns:
        uint8 0/1 image with ``reference``'s size, spacing, origin and direction; 0 outside the mask grid.
    """
    source = sitk_from_array_xyz(np.asarray(mask).astype(np.uint8, copy=False), affine)
    resampled = sitk.Resample(
        source,
        reference.GetSize(),
        sitk.Transform(),
        sitk.sitkNearestNeighbor,
        reference.GetOrigin(),
        reference.GetSpacing(),
        reference.GetDirection(),
        0,
        sitk.sitkUInt8,
    )
    return resampled
