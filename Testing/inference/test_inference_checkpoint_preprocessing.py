"""A checkpoint's preprocessing (spacing, orientation, intensity window, window size) drives inference."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.cli.main import main
from UniversalSegLib.inference import InferenceOptions, segment
from UniversalSegLib.inference.preprocessing import preprocess
from UniversalSegLib.inference.preprocessing_choice import choose_preprocessing
from UniversalSegLib.inference.preprocessing_settings import (
    OFFICIAL,
    PreprocessingSettings,
    PreprocessingSettingsError,
    preprocessing_origin,
    preprocessing_settings,
)
from UniversalSegLib.inference.sliding_window import count_windows
from UniversalSegLib.testing import random_model, write_random_checkpoint
from UniversalSegLib.weights.checkpoint import (
    CheckpointError,
    checkpoint_payload,
    load_model,
    save_checkpoint,
)

TRAINED = PreprocessingSettings(spacing_mm=3.0, intensity_min=-100, intensity_max=200, roi_size=16)


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory):
    """A U-Net checkpoint in our format that says it was trained at 3 mm, -100..200 HU, 16³ windows."""
    path = tmp_path_factory.mktemp("trained") / "trained.pth"
    return save_checkpoint(random_model("unet"), path, preprocessing=TRAINED)


@pytest.fixture
def small_ct(example_ct) -> sitk.Image:
    """A 16×16×16 voxel (3 mm) piece of the example CT inside the body."""
    return example_ct[45:61, 35:51, 8:24]


def test_settings_describe_round_trip_and_reject_bad_values() -> None:
    assert OFFICIAL.describe() == "1.5 mm RAS, intensity -175..250 HU, 96³ windows"
    anisotropic = PreprocessingSettings(spacing_mm=(0.8, 0.8, 3), orientation="lps", roi_size=64)
    assert anisotropic.describe() == "0.8×0.8×3 mm LPS, intensity -175..250 HU, 64³ windows"
    assert PreprocessingSettings.from_metadata(anisotropic.to_metadata()) == anisotropic
    for bad, message in (
        ({"spacing_mm": 0}, "spacing_mm must be in"),
        ({"spacing_mm": (1, 2)}, "one number or three"),
        ({"orientation": "RAR"}, "orientation must be three axis codes"),
        ({"intensity_min": 300}, "must be below intensity_max"),
        ({"roi_size": 32.5}, "roi_size must be an integer"),
    ):
        with pytest.raises(PreprocessingSettingsError, match=message):
            PreprocessingSettings(**bad)


def test_preprocess_honours_spacing_orientation_and_intensity_window() -> None:
    image = sitk.Image([20, 16, 10], sitk.sitkInt16) + 50  # 50 HU everywhere: nothing cropped
    image.SetSpacing([3.0, 3.0, 3.0])
    prepared = preprocess(image, TRAINED)
    assert prepared.shape == (20, 16, 10) and prepared.settings == TRAINED
    np.testing.assert_allclose(prepared.tensor.numpy(), (50 + 100) / 300, atol=1e-6)
    np.testing.assert_allclose(preprocess(image).tensor.numpy(), (50 + 175) / 425, atol=1e-6)
    assert preprocess(image).shape == (39, 31, 19)  # the official 1.5 mm grid

    lps = PreprocessingSettings(spacing_mm=(3.0, 3.0, 6.0), orientation="LPS")
    prepared = preprocess(image, lps)
    assert prepared.shape == (20, 16, 6)  # round((n - 1) * 3 / s) + 1 per axis
    np.testing.assert_allclose(np.diag(prepared.affine)[:3], [-3.0, -3.0, 6.0])  # L, P: RAS axes flipped


def test_trained_checkpoint_is_segmented_with_its_settings(trained_checkpoint, small_ct, caplog) -> None:
    model = load_model(trained_checkpoint)
    assert preprocessing_settings(model) == TRAINED
    assert model.metadata["preprocessing"] == TRAINED.to_metadata()
    options = InferenceOptions(device="cpu", postprocess=False)
    with caplog.at_level(logging.INFO, logger="UniversalSegLib.inference.pipeline"):
        result = segment(small_ct, model, [6], options)
    assert result.preprocessing == TRAINED and result.warnings == []
    assert result.windows == count_windows(preprocess(small_ct, TRAINED).shape, (16,) * 3, 0.5) == 1
    assert count_windows(preprocess(small_ct).shape, (16,) * 3, 0.5) == 27  # what 1.5 mm would have run
    assert (
        "Preprocessing: 3 mm RAS, intensity -100..200 HU, 16³ windows (from the checkpoint's training "
        "settings)" in caplog.text
    )
    assert result.masks[6].GetSize() == small_ct.GetSize()


def test_an_override_that_differs_from_training_warns(trained_checkpoint, small_ct) -> None:
    model = load_model(trained_checkpoint)
    result = segment(small_ct, model, [6], InferenceOptions(device="cpu", postprocess=False, roi_size=24))
    assert result.preprocessing.roi_size == 24 and result.preprocessing.spacing_mm == (3.0, 3.0, 3.0)
    assert result.windows == count_windows(preprocess(small_ct, TRAINED).shape, (24,) * 3, 0.5)
    assert len(result.warnings) == 1 and "24³ windows instead of 16³ windows" in result.warnings[0]

    given = InferenceOptions(preprocessing=PreprocessingSettings(roi_size=16))
    choice = choose_preprocessing(model, given)
    assert choice.settings == PreprocessingSettings(roi_size=16) and choice.origin == "given in the options"
    assert (
        "1.5 mm instead of 3 mm" in choice.warnings[0]
        and "-175..250 HU instead of -100..200 HU" in choice.warnings[0]
    )


@pytest.mark.parametrize("layout", ["official", "universalseg"])
def test_checkpoints_without_settings_get_the_official_ones(tmp_path, layout) -> None:
    model = load_model(write_random_checkpoint(tmp_path / "random.pth", layout=layout))
    assert "preprocessing" not in model.metadata
    assert preprocessing_settings(model) == OFFICIAL and preprocessing_origin(model) == "official defaults"
    choice = choose_preprocessing(model, InferenceOptions(roi_size=64))  # tests' smaller window: no warning
    assert choice.settings == PreprocessingSettings(roi_size=64) and choice.warnings == ()
    assert choose_preprocessing(model, InferenceOptions()).describe() == (
        "1.5 mm RAS, intensity -175..250 HU, 96³ windows (official defaults)"
    )


def test_invalid_stored_settings_fail_with_a_clear_checkpoint_error(tmp_path) -> None:
    payload = checkpoint_payload(random_model("unet"), preprocessing=TRAINED)
    path = tmp_path / "edited.pth"
    for value, reason in (
        ({**TRAINED.to_metadata(), "spacing_mm": [3.0, 0.0, 3.0]}, "spacing_mm must be in"),
        ({**TRAINED.to_metadata(), "orientation": "XYZ"}, "orientation must be three axis codes"),
        ({**TRAINED.to_metadata(), "intensity_max": -500}, "must be below intensity_max"),
        ({"spacing_mm": 3.0}, "missing orientation"),
        ("3 mm", "expected a dict"),
    ):
        payload["metadata"]["preprocessing"] = value
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match=f"edited.pth: invalid preprocessing settings.*{reason}"):
            load_model(path)


def test_cli_logs_and_uses_the_checkpoint_settings(trained_checkpoint, small_ct, tmp_path, capsys) -> None:
    ct_path = tmp_path / "small_ct.nii.gz"
    sitk.WriteImage(small_ct, str(ct_path))
    command = ["segment", str(ct_path), "-o", str(tmp_path / "labels.nii.gz"), "--weights"]
    command += [str(trained_checkpoint), "--classes", "liver", "--device", "cpu", "--progress", "none"]
    code = main(command)
    err = capsys.readouterr().err
    assert code == 0, err
    assert (
        "Preprocessing: 3 mm RAS, intensity -100..200 HU, 16³ windows (from the checkpoint's training "
        "settings)" in err
    )
    assert re.search(r"Estimated time: .*\(1 windows\)", err)  # counted on the 3 mm grid with 16³ windows
    assert "differs from the settings this model was trained with" not in err
