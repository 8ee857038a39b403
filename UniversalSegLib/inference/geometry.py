"""Conversions between SimpleITK (LPS) geometry and RAS affines in nibabel array order.

A SimpleITK image maps index ``(i, j, k)`` (x, y, z order) to the LPS point
``origin + direction @ diag(spacing) @ (i, j, k)``. A RAS affine maps the same index, in the
same axis order as nibabel gives, to ``diag(-1, -1, 1) @ LPS``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813

from .errors import InferenceError

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def check_ct_image(image: sitk.Image) -> None:
    """Raise :class:`InferenceError` unless ``image`` is a scalar 3D image."""
    if not isinstance(image, sitk.Image):
        raise InferenceError(f"expected a SimpleITK.Image, got {type(image).__name__}")
    if image.GetDimension() != 3:
        raise InferenceError(
            f"expected a 3D CT volume, got a {image.GetDimension()}D image of size {image.GetSize()}; "
            "extract one 3D volume first (e.g. one time point or one series)"
        )
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InferenceError(
            f"expected a scalar (grayscale) CT, got {image.GetNumberOfComponentsPerPixel()} components "
            "per voxel; convert it to a single-channel HU volume first"
        )
    if min(image.GetSize()) < 1:
        raise InferenceError(f"the image is empty (size {image.GetSize()})")


def ras_affine_from_sitk(image: sitk.Image) -> np.ndarray:
    """The 4x4 RAS affine of ``image`` for its voxel array in (x, y, z) index order."""
    direction = np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(np.array(image.GetSpacing(), dtype=np.float64))
    lps[:3, 3] = image.GetOrigin()
    return LPS_TO_RAS @ lps


def sitk_geometry_from_ras_affine(
    affine: np.ndarray,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """Split a RAS affine into SimpleITK ``(origin, spacing, direction)`` (LPS, row-major direction)."""
    lps = LPS_TO_RAS @ np.asarray(affine, dtype=np.float64)
    matrix = lps[:3, :3]
    spacing = np.linalg.norm(matrix, axis=0)
    if np.any(spacing <= 0):
        raise InferenceError(f"degenerate affine (zero spacing): {affine.tolist()}")
    direction = matrix / spacing
    return tuple(lps[:3, 3].tolist()), tuple(spacing.tolist()), tuple(direction.ravel().tolist())


def array_xyz_from_sitk(image: sitk.Image, dtype: type = np.float32) -> np.ndarray:
    """The voxel array of ``image`` in (x, y, z) order (SimpleITK gives (z, y, x))."""
    return np.ascontiguousarray(sitk.GetArrayViewFromImage(image).transpose(2, 1, 0), dtype=dtype)


def sitk_from_array_xyz(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A SimpleITK image from an (x, y, z) array and its RAS affine."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.asarray(array).transpose(2, 1, 0)))
    origin, spacing, direction = sitk_geometry_from_ras_affine(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image
