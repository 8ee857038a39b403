"""read_image on the real CTs, re-stored headers and broken inputs; check_ct_intensity."""

from __future__ import annotations

import gzip
import locale
import logging
import shutil
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from UniversalSegLib.io import ImageReadError, check_ct_intensity, read_image

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0])


def itk_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 voxel (i, j, k) -> LPS matrix of an ITK image."""
    matrix = np.eye(4)
    matrix[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def assert_same_geometry(a: sitk.Image, b: sitk.Image, atol: float = 1e-4) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(itk_matrix(a), itk_matrix(b), atol=atol)


def test_nifti_sform_only_ras_file_gets_flipped_direction(ct_dir: Path) -> None:
    path = ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"
    header = nib.load(path).header
    assert int(header["qform_code"]) == 0 and int(header["sform_code"]) > 0  # orientation only in sform
    image = read_image(path)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), np.diag([-1, -1, 1]), atol=1e-6)
    # Independent check: the ITK voxel->LPS matrix is nibabel's sform (RAS) with x and y negated.
    sform_lps = np.eye(4)
    sform_lps[:3] = LPS_FROM_RAS @ header.get_sform()[:3]
    np.testing.assert_allclose(itk_matrix(image), sform_lps, atol=1e-4)
    assert image.GetSize() == header.get_data_shape()


def test_int32_nifti_keeps_type_and_values(ct_dir: Path) -> None:
    path = ct_dir / "totalseg_example" / "example_ct.nii.gz"
    image = read_image(path)
    assert image.GetPixelID() == sitk.sitkInt32
    expected = np.asanyarray(nib.load(path).dataobj)  # (x, y, z)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(image).transpose(2, 1, 0), expected)
    assert check_ct_intensity(image) is None


def test_nrrd_with_5mm_slices(ct_dir: Path) -> None:
    path = ct_dir / "pyradiomics_lung1" / "lung1_image.nrrd"
    image = read_image(path)
    header = nrrd.read_header(str(path))
    np.testing.assert_allclose(image.GetSpacing(), np.linalg.norm(header["space directions"], axis=1))
    assert image.GetSpacing()[2] == pytest.approx(5.0, abs=1e-4)
    np.testing.assert_allclose(image.GetOrigin(), header["space origin"])
    assert image.GetSize() == tuple(header["sizes"])
    assert check_ct_intensity(image) is None


def test_dicom_folder_is_sorted_by_position(ct_dir: Path) -> None:
    folder = ct_dir / "dcmqi_ct3slice" / "dicom"
    image = read_image(folder)
    assert image.GetSize() == (512, 512, 3)
    assert image.GetOrigin()[2] == pytest.approx(-128.69, abs=1e-3)  # lowest slice first
    assert image.GetSpacing()[2] == pytest.approx(1.0, abs=1e-4)
    assert np.reshape(image.GetDirection(), (3, 3))[2, 2] > 0  # z increases with the slice index
    array = sitk.GetArrayViewFromImage(image)
    assert (array == -3024).any()  # padding rescaled to HU
    # Slice k of the volume is the file whose ImagePositionPatient z is origin z + k.
    for file in sorted(folder.glob("*.dcm")):
        single = sitk.ReadImage(str(file))
        k = round(single.GetOrigin()[2] - image.GetOrigin()[2])
        np.testing.assert_array_equal(array[k], sitk.GetArrayViewFromImage(single)[0])


def test_one_dicom_file_reads_its_whole_series(ct_dir: Path) -> None:
    folder = ct_dir / "dcmqi_ct3slice" / "dicom"
    from_file = read_image(folder / "02.dcm")
    from_folder = read_image(folder)
    assert_same_geometry(from_file, from_folder, atol=0)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(from_file), sitk.GetArrayFromImage(from_folder))


def _write_dicom_series(volume: sitk.Image, folder: Path, series_uid: str) -> None:
    """Write a small CT series (one file per slice) with SimpleITK.

    ITK's GDCM writer switches the process's LC_CTYPE to "C" (ASCII text I/O for the rest of the test
    session); the previous locale is restored afterwards.
    """
    previous_ctype = locale.setlocale(locale.LC_CTYPE)
    try:
        _write_slices(volume, folder, series_uid)
    finally:
        locale.setlocale(locale.LC_CTYPE, previous_ctype)


def _write_slices(volume: sitk.Image, folder: Path, series_uid: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.GetSize()[2]):
        image_slice = volume[:, :, k]
        position = volume.TransformIndexToPhysicalPoint((0, 0, k))
        tags = {
            "0008|0060": "CT",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{p:.6f}" for p in position),
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0008|0018": f"{series_uid}.{k + 1}",
        }
        for tag, value in tags.items():
            image_slice.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{series_uid[-3:]}_{k}.dcm"))
        writer.Execute(image_slice)


def test_folder_with_two_series_reads_largest_or_chosen(tmp_path: Path, caplog) -> None:
    volume = sitk.Image([8, 6, 4], sitk.sitkInt16)
    volume.SetSpacing((0.7, 0.7, 2.0))
    volume.SetOrigin((-10.0, 5.0, -40.0))
    small = sitk.Image([8, 6, 2], sitk.sitkInt16)
    small.SetOrigin((0.0, 0.0, 100.0))
    _write_dicom_series(volume, tmp_path, "1.2.826.0.1.3680043.2.1125.444")
    _write_dicom_series(small, tmp_path, "1.2.826.0.1.3680043.2.1125.222")
    with caplog.at_level(logging.WARNING, logger="UniversalSegLib"):
        largest = read_image(tmp_path)
    assert largest.GetSize() == (8, 6, 4)
    assert "2 DICOM series" in caplog.text
    chosen = read_image(tmp_path, series_id="1.2.826.0.1.3680043.2.1125.222")
    assert chosen.GetSize() == (8, 6, 2)
    with pytest.raises(ImageReadError, match="not in"):
        read_image(tmp_path, series_id="1.2.3")


def test_series_with_missing_slice_warns(tmp_path: Path, caplog) -> None:
    volume = sitk.Image([6, 5, 5], sitk.sitkInt16)
    volume.SetSpacing((0.7, 0.7, 2.0))
    _write_dicom_series(volume, tmp_path, "1.2.826.0.1.3680043.2.1125.555")
    with caplog.at_level(logging.WARNING, logger="UniversalSegLib"):
        assert read_image(tmp_path).GetSize() == (6, 5, 5)
    assert "uneven slice spacing" not in caplog.text
    (tmp_path / "555_2.dcm").unlink()
    with caplog.at_level(logging.WARNING, logger="UniversalSegLib"):
        assert read_image(tmp_path).GetSize() == (6, 5, 4)
    assert "uneven slice spacing" in caplog.text


@pytest.fixture(scope="module")
def small_ct(ct_dir: Path) -> sitk.Image:
    """A 40x30x12 crop of the real 3 mm CT."""
    return read_image(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz")[40:80, 30:60, 9:21]


def _rotation(angle_z: float, angle_x: float) -> np.ndarray:
    cz, sz, cx, sx = np.cos(angle_z), np.sin(angle_z), np.cos(angle_x), np.sin(angle_x)
    return np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize(
    "direction",
    [np.eye(3), np.diag([1.0, -1.0, 1.0]), _rotation(0.5, 0.2)],
    ids=["LPS", "LAS", "oblique"],
)
def test_restored_headers_round_trip(
    small_ct: sitk.Image, tmp_path: Path, extension: str, direction: np.ndarray
) -> None:
    image = sitk.Image(small_ct)
    image.SetDirection(direction.ravel().tolist())
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((12.5, -30.25, 101.0))
    path = tmp_path / f"ct{extension}"
    sitk.WriteImage(image, str(path))
    result = read_image(path)
    assert_same_geometry(result, image)
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(result), sitk.GetArrayViewFromImage(image))
    if extension == ".nii.gz":  # independent reader: nibabel's RAS affine agrees
        affine_lps = np.eye(4)
        affine_lps[:3] = LPS_FROM_RAS @ nib.load(path).affine[:3]
        np.testing.assert_allclose(affine_lps, itk_matrix(image), atol=1e-4)


def test_size_one_fourth_axis_is_dropped(small_ct: sitk.Image, tmp_path: Path) -> None:
    path = tmp_path / "one_volume.nrrd"
    sitk.WriteImage(sitk.JoinSeries([small_ct]), str(path))
    image = read_image(path)
    assert image.GetDimension() == 3 and image.GetSize() == small_ct.GetSize()


@pytest.mark.parametrize(
    ("make_image", "message"),
    [
        (lambda ct: ct[:, :, 5], "needs a 3D volume"),
        (lambda ct: ct[:, :, 5:6], "needs a 3D volume"),
        (lambda ct: sitk.JoinSeries([ct, ct]), "4D image with 2 volumes"),
        (lambda ct: sitk.Compose([ct, ct]), "pick one volume/channel"),
    ],
    ids=["2D", "single-slice", "4D", "vector"],
)
def test_unusable_images_are_refused(small_ct: sitk.Image, tmp_path: Path, make_image, message: str) -> None:
    path = tmp_path / "bad.nrrd"
    sitk.WriteImage(make_image(small_ct), str(path))
    with pytest.raises(ImageReadError, match=message):
        read_image(path)


def test_missing_corrupt_truncated_and_empty_inputs(ct_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.nii.gz")
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"this is not an image" * 10)
    with pytest.raises(ImageReadError, match="corrupt or not a supported image"):
        read_image(garbage)
    with pytest.raises(ImageReadError, match="no DICOM series"):
        read_image(tmp_path)  # folder holding only non-DICOM files
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImageReadError, match="no DICOM series") as caught:
        read_image(empty)
    assert isinstance(caught.value, ValueError)


def test_truncated_nifti_is_refused(ct_dir: Path, tmp_path: Path) -> None:
    """ITK zero-fills a truncated NIfTI silently; read_image must refuse it."""
    source = nib.load(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz")
    complete = tmp_path / "complete.nii"
    nib.save(nib.Nifti1Image(np.asanyarray(source.dataobj), source.affine), complete)
    assert read_image(complete).GetSize() == source.shape
    data = complete.read_bytes()
    cut_raw = tmp_path / "cut_raw.nii"
    cut_raw.write_bytes(data[: len(data) // 2])
    short_gzip = tmp_path / "short_gzip.nii.gz"  # a valid gzip stream holding half the file
    short_gzip.write_bytes(gzip.compress(data[: len(data) // 2]))
    cut_gzip = tmp_path / "cut_gzip.nii.gz"  # a gzip stream cut off mid-way
    compressed = gzip.compress(data)
    cut_gzip.write_bytes(compressed[: len(compressed) // 2])
    for path in (cut_raw, short_gzip, cut_gzip):
        with pytest.raises(ImageReadError, match="truncated"):
            read_image(path)


def test_dicom_series_copied_elsewhere_still_reads(ct_dir: Path, tmp_path: Path) -> None:
    for file in (ct_dir / "dcmqi_ct3slice" / "dicom").glob("*.dcm"):
        shutil.copy(file, tmp_path / f"renamed_{file.stem}")  # no extension, other names
    assert read_image(tmp_path).GetSize() == (512, 512, 3)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 1.0, "normalised"),
        (0.0, 255.0, "8-bit"),
        (0.0, 4095.0, "no negative"),
        (-200.0, 1500.0, "no air"),
        (-1024.0, 2000.0, None),
    ],
)
def test_check_ct_intensity(low: float, high: float, expected: str | None) -> None:
    array = np.linspace(low, high, 4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    warning = check_ct_intensity(sitk.GetImageFromArray(array))
    if expected is None:
        assert warning is None
    else:
        assert expected in warning and "Hounsfield" in warning
