"""Read a DICOM series (slices sorted by position with GDCM) into one 3D image."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.io.errors import ImageReadError

logger = logging.getLogger(__name__)

_SERIES_INSTANCE_UID_TAG = "0020|000e"
_IMAGE_POSITION_TAG = "0020|0032"


def read_dicom_folder(folder: Path, series_id: str | None = None) -> sitk.Image:
    """Read one series from ``folder``: ``series_id``, or the series with the most files.

    Raises:
        ImageReadError: no DICOM series in the folder, or ``series_id`` not found.
    """
    series_ids = list(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))
    if not series_ids:
        raise ImageReadError(
            f"Folder {folder} contains no DICOM series; give an image file or a folder of DICOM slices."
        )
    if series_id is None:
        file_counts = {uid: len(_series_files(folder, uid)) for uid in series_ids}
        series_id = max(series_ids, key=file_counts.__getitem__)
        if len(series_ids) > 1:
            logger.warning(
                "Folder %s holds %d DICOM series %s; reading the largest, %s (%d files). "
                "Pass a series id to choose another.",
                folder,
                len(series_ids),
                file_counts,
                series_id,
                file_counts[series_id],
            )
    elif series_id not in series_ids:
        raise ImageReadError(
            f"DICOM series {series_id} is not in {folder}; the folder holds: {', '.join(series_ids)}."
        )
    return _read_series(folder, series_id)


def read_dicom_file_series(file: Path, series_id: str | None = None) -> sitk.Image:
    """Read the whole series that DICOM ``file`` belongs to, from its folder."""
    if series_id is None:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(file))
        reader.ReadImageInformation()
        if reader.HasMetaDataKey(_SERIES_INSTANCE_UID_TAG):
            series_id = reader.GetMetaData(_SERIES_INSTANCE_UID_TAG).strip().rstrip("\x00")
    return read_dicom_folder(file.parent, series_id)


def _series_files(folder: Path, series_id: str) -> tuple[str, ...]:
    # GDCM sorts the files by image position along the slice normal.
    return sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_id)


def _read_series(folder: Path, series_id: str) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(_series_files(folder, series_id))
    reader.MetaDataDictionaryArrayUpdateOn()
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise ImageReadError(f"Could not read DICOM series {series_id} in {folder}: {error}") from error
    _warn_if_irregular(reader, image, folder)
    logger.debug("Read DICOM series %s from %s: size %s", series_id, folder, image.GetSize())
    return image


def _warn_if_irregular(reader: sitk.ImageSeriesReader, image: sitk.Image, folder: Path) -> None:
    """Warn when slice positions are not evenly spaced (missing or duplicate slices)."""
    try:
        positions = np.array(
            [
                [float(value) for value in reader.GetMetaData(index, _IMAGE_POSITION_TAG).split("\\")]
                for index in range(len(reader.GetFileNames()))
            ]
        )
    except (RuntimeError, ValueError):
        return  # no usable positions: nothing to check
    if len(positions) < 3:
        return
    normal = np.reshape(image.GetDirection(), (3, 3))[:, 2]
    gaps = np.diff(positions @ normal)
    spacing = image.GetSpacing()[2]
    if np.abs(gaps - spacing).max() > 0.01 * spacing + 1e-3:
        logger.warning(
            "DICOM series in %s has uneven slice spacing (%.3g to %.3g mm, missing or duplicate slices?); "
            "it is read on a regular %.3g mm grid, so results may be misplaced along the slice axis.",
            folder,
            gaps.min(),
            gaps.max(),
            spacing,
        )
