"""Checks that masks share one voxel grid, and helpers to turn them into numpy arrays."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

#: Tolerance for comparing origins/spacings/directions (well below any real voxel size).
GRID_TOLERANCE = 1e-5


def same_grid(a: sitk.Image, b: sitk.Image, tolerance: float = GRID_TOLERANCE) -> bool:
    """Whether two images have the same size, spacing, origin and direction."""
    return (
        a.GetSize() == b.GetSize()
        and np.allclose(a.GetSpacing(), b.GetSpacing(), rtol=0, atol=tolerance)
        and np.allclose(a.GetOrigin(), b.GetOrigin(), rtol=0, atol=tolerance)
        and np.allclose(a.GetDirection(), b.GetDirection(), rtol=0, atol=tolerance)
    )


def reference_grid(masks: Mapping[int, sitk.Image]) -> sitk.Image:
    """Return one mask whose grid all masks share.

    Raises:
        ValueError: ``masks`` is empty, a mask is not 3D scalar, or masks lie on different grids.
    """
    if not masks:
        raise ValueError("No masks to write; select at least one class.")
    reference = next(iter(masks.values()))
    for index, mask in masks.items():
        if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError(f"Mask of class {index} must be a 3D scalar image.")
        if not same_grid(mask, reference):
            raise ValueError(
                f"Mask of class {index} lies on a different voxel grid than the others; "
                "resample all masks to one grid first."
            )
    return reference


def mask_array(mask: sitk.Image) -> np.ndarray:
    """Boolean (z, y, x) array of a mask's non-zero voxels."""
    return sitk.GetArrayViewFromImage(mask) != 0


def occupied_planes(mask: np.ndarray) -> list[np.ndarray]:
    """For each axis, which planes across it hold a true voxel (1-D boolean arrays).

    Axis 0 comes from a reduction over the other axes, the others from the projection along axis 0 of
    the slab that holds voxels: both read contiguous memory, and nothing outside that slab is read twice.
    """
    if mask.ndim == 1:
        return [mask]
    first = mask.any(axis=tuple(range(1, mask.ndim)))
    extent = span(first)
    rest = mask[extent].any(axis=0) if extent is not None else np.zeros(mask.shape[1:], dtype=bool)
    return [first, *occupied_planes(rest)]


def span(profile: np.ndarray) -> slice | None:
    """The slice from the first to the last true value of a 1-D boolean array, ``None`` when none."""
    hits = np.flatnonzero(profile)
    return slice(int(hits[0]), int(hits[-1]) + 1) if hits.size else None


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding all True voxels of a boolean array, or None if empty."""
    spans = [span(profile) for profile in occupied_planes(mask)]
    if any(extent is None for extent in spans):
        return None
    return tuple(spans)  # type: ignore[arg-type]


def ijk_to_lps(image: sitk.Image) -> np.ndarray:
    """4x4 matrix mapping voxel indices (i, j, k) to LPS millimetres."""
    matrix = np.eye(4)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix[:3, :3] = direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix
