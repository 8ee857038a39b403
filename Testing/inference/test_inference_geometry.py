"""Masks come back exactly on the input grid, at the right physical place, for every orientation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813

from UniversalSegLib.inference import InferenceOptions, segment
from UniversalSegLib.inference.preprocessing import preprocess, preprocess_labels
from UniversalSegLib.inference.resampling import mask_to_input_grid

from .conftest import ThresholdPredictor

ROUND_TRIP_ORGANS = {
    1: "spleen",
    2: "kidney_right",
    3: "kidney_left",
    5: "liver",
    6: "stomach",
    7: "pancreas",
}
ROUND_TRIP_ORGANS |= {52: "aorta", 63: "inferior_vena_cava", 64: "portal_vein"}


def _rotation(degrees_z: float, degrees_x: float) -> np.ndarray:
    a, b = np.deg2rad(degrees_z), np.deg2rad(degrees_x)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return rz @ rx


def _oblique(image: sitk.Image) -> sitk.Image:
    """Same voxels, header rotated by 20° about z and 10° about x."""
    rotated = sitk.Image(image)
    direction = np.array(image.GetDirection()).reshape(3, 3) @ _rotation(20, 10)
    rotated.SetDirection(direction.ravel().tolist())
    return rotated


VARIANTS: dict[str, Callable[[sitk.Image], sitk.Image]] = {
    "RAS": lambda image: image,
    "LPS": lambda image: sitk.DICOMOrient(image, "LPS"),
    "LAS": lambda image: sitk.DICOMOrient(image, "LAS"),
    "oblique": _oblique,
}


def _stored(image: sitk.Image, variant: str, folder: Path) -> sitk.Image:
    """The image in ``variant`` orientation, written to and read back from a NIfTI file."""
    path = folder / f"ct_{variant}.nii.gz"
    sitk.WriteImage(VARIANTS[variant](image), str(path))
    return sitk.ReadImage(str(path))


def _assert_same_grid(mask: sitk.Image, image: sitk.Image) -> None:
    assert mask.GetSize() == image.GetSize()
    assert mask.GetSpacing() == image.GetSpacing()
    assert mask.GetOrigin() == image.GetOrigin()
    assert mask.GetDirection() == image.GetDirection()
    assert mask.GetPixelID() == sitk.sitkUInt8


def _physical_centroid(mask: sitk.Image) -> np.ndarray:
    index = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:, ::-1].mean(axis=0)  # (x, y, z)
    return np.array(mask.TransformContinuousIndexToPhysicalPoint(index.tolist()))


def _with_blob(image: sitk.Image, center: np.ndarray, radius_mm: float) -> sitk.Image:
    """CT clipped to 100 HU, plus a 1000 HU ball at the physical point ``center``."""
    array = np.minimum(sitk.GetArrayFromImage(image), 100).astype(np.int16)
    spacing, origin = np.array(image.GetSpacing()), np.array(image.GetOrigin())
    direction = np.array(image.GetDirection()).reshape(3, 3)
    middle = np.array(image.TransformPhysicalPointToContinuousIndex(center.tolist()))
    reach = np.ceil(radius_mm / spacing.min()) + 1
    low = np.maximum(np.floor(middle - reach), 0).astype(int)
    high = np.minimum(np.ceil(middle + reach) + 1, image.GetSize()).astype(int)
    xyz = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(low, high, strict=True)], indexing="ij"), -1)
    points = origin + (xyz * spacing) @ direction.T
    inside = np.linalg.norm(points - center, axis=-1) <= radius_mm  # (x, y, z) box
    box = tuple(slice(a, b) for a, b in zip(low[::-1], high[::-1], strict=True))
    array[box][inside.transpose(2, 1, 0)] = 1000
    blob = sitk.GetImageFromArray(array)
    blob.CopyInformation(image)
    return blob


@pytest.mark.parametrize("variant", [*VARIANTS, "nrrd"])
def test_blob_comes_back_at_its_physical_point(
    example_ct, ct_dir: Path, variant: str, tmp_path: Path
) -> None:
    if variant == "nrrd":
        stored = sitk.ReadImage(str(ct_dir / "pyradiomics_lung1" / "lung1_image.nrrd"))
        center = np.array(stored.TransformContinuousIndexToPhysicalPoint([300.4, 260.7, 20.3]))
    else:
        stored = _stored(example_ct, variant, tmp_path)
        center = np.array(stored.TransformContinuousIndexToPhysicalPoint([70.3, 40.6, 14.2]))
    image = _with_blob(stored, center, radius_mm=12.0)
    predictor = ThresholdPredictor(threshold=0.9)
    result = segment(image, predictor, [15], InferenceOptions(roi_size=96, device="cpu"))
    mask = result.masks[15]
    _assert_same_grid(mask, image)
    painted = sitk.GetArrayViewFromImage(image) == 1000
    predicted = sitk.GetArrayViewFromImage(mask) > 0
    # Sub-voxel grid offsets (MONAI's Spacing on oblique or anisotropic input) blur the edge slightly.
    assert 2 * (painted & predicted).sum() / (painted.sum() + predicted.sum()) > 0.85
    assert np.linalg.norm(_physical_centroid(mask) - center) < max(image.GetSpacing())
    # The model grid itself is placed correctly in RAS (not only consistently with the way back).
    prepared = preprocess(image)
    bright = np.argwhere(prepared.tensor[0].numpy() > 0.9).mean(axis=0)
    ras = prepared.affine @ np.append(bright, 1.0)
    np.testing.assert_allclose(ras[:3] * [-1, -1, 1], center, atol=1.5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_label_round_trip_dice(example_ct, example_seg, variant: str) -> None:
    """Reference labels → model grid (nearest, same crop) → back to the input grid: Dice ≥ 0.98."""
    image, labels = VARIANTS[variant](example_ct), VARIANTS[variant](example_seg)
    prepared = preprocess(image)
    model_grid = preprocess_labels(labels, prepared)
    reference = sitk.GetArrayViewFromImage(labels)
    for value, name in ROUND_TRIP_ORGANS.items():
        back = mask_to_input_grid(model_grid == value, prepared.affine, image)
        _assert_same_grid(back, image)
        predicted, truth = sitk.GetArrayViewFromImage(back) > 0, reference == value
        dice = 2 * np.logical_and(predicted, truth).sum() / (predicted.sum() + truth.sum())
        assert dice >= 0.98, f"{name}: Dice {dice:.4f} ({variant})"


def test_three_slice_dicom_series_smaller_than_window(ct_dir: Path) -> None:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(
        sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(ct_dir / "dcmqi_ct3slice" / "dicom"))
    )
    image = reader.Execute()
    predictor = ThresholdPredictor(threshold=0.9)
    result = segment(image, predictor, [5], InferenceOptions(postprocess=False))
    _assert_same_grid(result.masks[5], image)
    assert sitk.GetArrayViewFromImage(result.masks[5]).any()
    assert predictor.windows >= 1
