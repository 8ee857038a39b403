"""Preprocessing: same as the official MONAI chain, output size rule, RAS geometry, bad input."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureChannelFirstd,
    LoadImaged,
    Orientationd,
    ScaleIntensityRanged,
    Spacingd,
)

from UniversalSegLib.inference import InferenceError
from UniversalSegLib.inference.geometry import (
    array_xyz_from_sitk,
    ras_affine_from_sitk,
    sitk_geometry_from_ras_affine,
)
from UniversalSegLib.inference.preprocessing import preprocess, preprocess_labels

LEFT_LUNG_LOBES, RIGHT_LUNG_LOBES = (10, 11), (12, 13, 14)  # TotalSegmentator labels


def test_affine_and_array_match_nibabel(example_ct, example_ct_path) -> None:
    nifti = nib.load(str(example_ct_path))
    np.testing.assert_allclose(ras_affine_from_sitk(example_ct), nifti.affine, atol=1e-4)
    np.testing.assert_array_equal(
        array_xyz_from_sitk(example_ct), np.asarray(nifti.dataobj, dtype=np.float32)
    )


def test_geometry_conversion_round_trip() -> None:
    angle = np.deg2rad(25)
    direction = np.array([[np.cos(angle), 0, -np.sin(angle)], [0, -1, 0], [np.sin(angle), 0, np.cos(angle)]])
    image = sitk.Image([5, 6, 7], sitk.sitkInt16)
    image.SetDirection(direction.ravel().tolist())
    image.SetSpacing([0.7, 1.1, 2.5])
    image.SetOrigin([10.0, -20.0, 30.0])
    origin, spacing, direction_out = sitk_geometry_from_ras_affine(ras_affine_from_sitk(image))
    np.testing.assert_allclose(origin, image.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(spacing, image.GetSpacing(), atol=1e-9)
    np.testing.assert_allclose(direction_out, image.GetDirection(), atol=1e-9)


def test_same_as_official_monai_chain(example_ct, example_ct_path) -> None:
    chain = Compose(
        [
            LoadImaged(keys="image", reader="NibabelReader", image_only=True),
            EnsureChannelFirstd(keys="image"),
            Orientationd(keys="image", axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))),
            Spacingd(keys="image", pixdim=(1.5, 1.5, 1.5), mode="bilinear"),
            ScaleIntensityRanged(keys="image", a_min=-175, a_max=250, b_min=0.0, b_max=1.0, clip=True),
            CropForegroundd(keys="image", source_key="image", allow_smaller=True),
        ]
    )
    reference = chain({"image": str(example_ct_path)})["image"]
    prepared = preprocess(example_ct)
    assert prepared.shape == tuple(reference.shape[1:])
    np.testing.assert_allclose(prepared.tensor.numpy(), reference.numpy(), atol=1e-5)
    np.testing.assert_allclose(prepared.affine, reference.affine.numpy(), atol=1e-4)


@pytest.mark.parametrize(("size", "spacing"), [((60, 50, 30), 3.0), ((20, 17, 9), 2.0), ((31, 12, 5), 0.8)])
def test_output_size_rule(size: tuple[int, int, int], spacing: float) -> None:
    image = sitk.Image(list(size), sitk.sitkInt16) + 100  # all foreground: no crop
    image.SetSpacing([spacing] * 3)
    prepared = preprocess(image)
    assert prepared.shape == tuple(round((n - 1) * spacing / 1.5) + 1 for n in size)
    assert prepared.tensor.shape[0] == 1
    np.testing.assert_allclose(prepared.tensor.numpy(), 275 / 425, atol=1e-6)
    np.testing.assert_allclose(np.diag(prepared.affine)[:3], 1.5)


def test_left_lung_has_smaller_ras_x(example_ct, example_seg) -> None:
    """Absolute orientation check: in the model grid, patient left is toward smaller x."""
    for variant in (lambda i: i, lambda i: sitk.DICOMOrient(i, "LPS")):
        prepared = preprocess(variant(example_ct))
        labels = preprocess_labels(variant(example_seg), prepared)
        left_x = np.nonzero(np.isin(labels, LEFT_LUNG_LOBES))[0].mean()
        right_x = np.nonzero(np.isin(labels, RIGHT_LUNG_LOBES))[0].mean()
        assert left_x < right_x - 20


def test_bad_images_are_rejected() -> None:
    with pytest.raises(InferenceError, match="3D"):
        preprocess(sitk.Image([10, 10], sitk.sitkInt16))
    with pytest.raises(InferenceError, match="3D"):
        preprocess(sitk.Image([10, 10, 10, 2], sitk.sitkInt16))
    with pytest.raises(InferenceError, match="components"):
        preprocess(sitk.Image([10, 10, 10], sitk.sitkVectorFloat32, 3))
    with pytest.raises(InferenceError, match="HU"):
        preprocess(sitk.Image([10, 10, 10], sitk.sitkInt16) - 1000)


def test_preprocessing_on_a_device_gives_the_same_grid() -> None:
    """``device`` moves the chain onto that device (CUDA in real runs; the CPU device here) and leaves
    the result and its geometry as on the default path."""
    image = sitk.GetImageFromArray(np.random.default_rng(0).uniform(-300, 400, (20, 24, 28)).astype(np.int16))
    image.SetSpacing((2.0, 1.2, 0.9))
    default = preprocess(image)
    on_device = preprocess(image, device=torch.device("cpu"))
    assert on_device.tensor.device.type == "cpu"
    assert torch.equal(on_device.tensor, default.tensor)
    np.testing.assert_array_equal(on_device.affine, default.affine)
    assert (on_device.crop_start, on_device.crop_end) == (default.crop_start, default.crop_end)


def test_a_gpu_run_preprocesses_on_the_gpu_and_falls_back_to_the_cpu(monkeypatch) -> None:
    """On CUDA the pipeline asks for preprocessing on the GPU; when that fails for any reason but the
    image itself, the CPU preprocesses (the reference path)."""
    from UniversalSegLib.inference import pipeline
    from UniversalSegLib.inference.options import InferenceOptions
    from UniversalSegLib.inference.preprocessing_settings import OFFICIAL

    image = sitk.GetImageFromArray(np.random.default_rng(1).uniform(-300, 400, (12, 14, 16)).astype(np.int16))
    devices = []

    def preprocess_without_a_gpu(image, settings, device=None):
        devices.append(None if device is None else torch.device(device).type)
        if device is not None:
            raise RuntimeError("CUDA error: no kernel image is available for execution on the device")
        return preprocess(image, settings)

    monkeypatch.setattr(pipeline, "resolve_device", lambda name: torch.device("cuda", 0))
    monkeypatch.setattr(pipeline, "preprocess", preprocess_without_a_gpu)
    warnings: list[str] = []
    result = pipeline._preprocess(image, OFFICIAL, InferenceOptions(), warnings)
    assert devices == ["cuda", None]
    assert torch.equal(result.tensor, preprocess(image).tensor)
    assert (
        len(warnings) == 1 and "preprocessed on the CPU" in warnings[0] and "no kernel image" in warnings[0]
    )

    def not_a_ct(image, settings, device=None):
        raise InferenceError("no voxel is above -175 HU")

    monkeypatch.setattr(pipeline, "preprocess", not_a_ct)
    with pytest.raises(InferenceError):  # about the image: no second try on the CPU
        pipeline._preprocess(image, OFFICIAL, InferenceOptions(), [])
