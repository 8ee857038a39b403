"""Exact binary dilation and erosion by a cube, as three 1-D passes.

A cube is the product of three lines, so dilating (or eroding) by the line along each axis in turn gives
``scipy.ndimage.binary_dilation`` (``binary_erosion``) with a cubic structure and border value 0 voxel
for voxel, at a fraction of the cost of the 3-D structure.
"""

from __future__ import annotations

import numpy as np


def cube_filter(mask: np.ndarray, radius: int, dilate: bool) -> np.ndarray:
    """Binary dilation (or erosion) by a cube of side ``2 * radius + 1``, voxels outside ``mask`` false.

    The cube is the product of three lines, so one 1-D pass per axis gives scipy's result exactly.
    """
    out = mask
    for axis in range(mask.ndim):
        source, result = out, out.copy()

        def along(part: slice, axis: int = axis) -> tuple[slice, ...]:
            return (slice(None),) * axis + (part,)

        for shift in range(1, radius + 1):
            before, after = along(slice(shift, None)), along(slice(None, -shift))
            if dilate:
                result[before] |= source[after]
                result[after] |= source[before]
            else:
                result[before] &= source[after]
                result[after] &= source[before]
        if not dilate and radius > 0:  # the border value 0 erodes the planes within radius of the edges
            result[along(slice(None, radius))] = False
            result[along(slice(-radius, None))] = False
        out = result
    return out
