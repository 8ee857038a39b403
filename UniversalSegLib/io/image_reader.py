"""Read a CT volume from a NIfTI, NRRD, MetaImage file or a DICOM series folder.

The image is returned as a 3D scalar :class:`SimpleITK.Image` in its stored pixel type (e.g.
int16, int32 or float32, with NIfTI ``scl_slope``/DICOM rescale already applied by SimpleITK),
with LPS geometry. Cast it with ``SimpleITK.Cast(image, SimpleITK.sitkFloat32)`` if floats are needed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.io.dicom_series import read_dicom_file_series, read_dicom_folder
from UniversalSegLib.io.errors import ImageReadError
from UniversalSegLib.io.nifti_integrity import check_nifti_complete, is_nifti

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = (
    "NIfTI (.nii, .nii.gz), NRRD (.nrrd, .nhdr), MetaImage (.mha, .mhd) or a DICOM series folder"
)


def read_image(path: str | os.PathLike, series_id: str | None = None) -> sitk.Image:
    """Read a 3D CT volume.

    Args:
        path: an image file, a DICOM folder, or one file of a DICOM series (the whole series
            in its folder is read).
        series_id: DICOM SeriesInstanceUID to read when a folder holds several series; by default
            the series with the most files is read (with a warning).

    Returns:
        A 3D scalar image in the stored pixel type with LPS origin/spacing/direction.

    Raises:
        ImageReadError: the path is missing, unreadable, not a volume, or not a single-channel 3D image.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ImageReadError(f"Input image {path} does not exist; check the path.")
    if path.is_dir():
        image = read_dicom_folder(path, series_id)
    elif _is_dicom_file(path):
        image = read_dicom_file_series(path, series_id)
    else:
        image = _read_file(path)
    return _as_scalar_volume(image, path)


def _read_file(path: Path) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as error:
        raise ImageReadError(
            f"Could not read {path}: it is corrupt or not a supported image ({SUPPORTED_FORMATS}). "
            f"Reader message: {_first_line(error)}"
        ) from error
    if is_nifti(path):
        check_nifti_complete(path)  # ITK zero-fills truncated NIfTI data without an error
    return image


def _is_dicom_file(path: Path) -> bool:
    return sitk.ImageFileReader.GetImageIOFromFileName(str(path)) == "GDCMImageIO"


def _as_scalar_volume(image: sitk.Image, path: Path) -> sitk.Image:
    """Check that ``image`` is one 3D scalar volume; drop a trailing size-1 4th axis."""
    if image.GetNumberOfComponentsPerPixel() > 1:
        raise ImageReadError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel (vector/RGB image); "
            "pick one volume/channel and save it as a scalar 3D image."
        )
    if image.GetDimension() == 4:
        if image.GetSize()[3] != 1:
            raise ImageReadError(
                f"{path} is a 4D image with {image.GetSize()[3]} volumes; pick one volume/channel "
                "and save it as a 3D image."
            )
        image = sitk.Extract(image, [*image.GetSize()[:3], 0], [0, 0, 0, 0])
    if image.GetDimension() != 3 or min(image.GetSize()) < 2:
        raise ImageReadError(
            f"{path} is a 2D image (size {'x'.join(map(str, image.GetSize()))}); "
            "segmentation needs a 3D volume with at least 2 voxels along each axis "
            "(for DICOM, give the folder of the whole series)."
        )
    if "complex" in image.GetPixelIDTypeAsString():
        raise ImageReadError(f"{path} has complex voxels; convert it to a real-valued CT volume.")
    logger.debug(
        "Read %s: size %s, spacing %s, type %s",
        path,
        image.GetSize(),
        image.GetSpacing(),
        image.GetPixelIDTypeAsString(),
    )
    return image


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    # ITK messages start with a file/line header; the description is usually the last line.
    return lines[-1] if lines else repr(error)
