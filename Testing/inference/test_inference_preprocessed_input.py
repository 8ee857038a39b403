"""``segment(preprocessed=...)``: a CT preprocessed beforehand (a batch's prefetch thread) is used as is;
one made with other settings is refused with a clear error; the feature cache works alongside."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions, pipeline, segment
from UniversalSegLib.inference.feature_cache import FeatureCache
from UniversalSegLib.inference.preprocessing import preprocess
from UniversalSegLib.inference.preprocessing_choice import choose_preprocessing
from UniversalSegLib.inference.preprocessing_settings import OFFICIAL, PreprocessingSettings
from UniversalSegLib.model import UniversalModel

from .conftest import ThresholdPredictor

OPTIONS = InferenceOptions(roi_size=16, overlap=0.0, postprocess=False, device="cpu", threads=1)


def ball_ct() -> sitk.Image:
    """A 14×12×10 CT at 2.5 mm with a bright ball in soft tissue (masks with structure)."""
    z, y, x = np.mgrid[0:10, 0:12, 0:14]
    array = np.where((z - 4) ** 2 + (y - 6) ** 2 + (x - 7) ** 2 < 12, 200, -20).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((2.5, 2.5, 2.5))
    return image


def _refuse(image, settings):
    raise AssertionError("segment preprocessed although it was given the preprocessed CT")


def masks_of(result) -> dict[int, np.ndarray]:
    return {index: sitk.GetArrayFromImage(mask) for index, mask in result.masks.items()}


def test_a_prepared_ct_is_used_as_is_and_gives_the_same_masks(monkeypatch) -> None:
    image = ball_ct()
    plain = segment(image, ThresholdPredictor(), [6], OPTIONS)
    assert 0 < masks_of(plain)[6].sum() < masks_of(plain)[6].size
    prepared = preprocess(image, choose_preprocessing(ThresholdPredictor(), OPTIONS).settings)
    monkeypatch.setattr(pipeline, "preprocess", _refuse)

    given = segment(image, ThresholdPredictor(), [6], OPTIONS, preprocessed=prepared)

    np.testing.assert_array_equal(masks_of(given)[6], masks_of(plain)[6])
    assert given.windows == plain.windows and given.preprocessing == plain.preprocessing
    assert set(given.timings) >= {"preprocess", "inference", "network", "postprocess", "resample"}
    # A preprocessed CT made for another window size is the same CT: the window is not preprocessing.
    other_window = preprocess(image, OFFICIAL)  # 96³ windows, as released models
    again = segment(image, ThresholdPredictor(), [6], OPTIONS, preprocessed=other_window)
    np.testing.assert_array_equal(masks_of(again)[6], masks_of(plain)[6])


@pytest.mark.parametrize(
    "settings",
    [
        PreprocessingSettings(spacing_mm=3.0, roi_size=16),
        PreprocessingSettings(intensity_min=-100.0, intensity_max=200.0, roi_size=16),
        PreprocessingSettings(orientation="LPS", roi_size=16),
    ],
)
def test_a_ct_prepared_with_other_settings_is_refused(settings, monkeypatch) -> None:
    image = ball_ct()
    prepared = preprocess(image, settings)
    monkeypatch.setattr(pipeline, "preprocess", _refuse)
    with pytest.raises(InferenceError, match=r"was made with .* but this run uses .* preprocessed=None"):
        segment(image, ThresholdPredictor(), [6], OPTIONS, preprocessed=prepared)
    with pytest.raises(InferenceError, match="must be a PreprocessedImage"):
        segment(image, ThresholdPredictor(), [6], OPTIONS, preprocessed=image)


def test_feature_cache_records_from_the_prepared_ct_and_a_requery_needs_none(tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    model = UniversalModel("unet").eval()
    image = ball_ct()
    cache = FeatureCache(tmp_path, limit_bytes=10**9)
    prepared = preprocess(image, choose_preprocessing(model, OPTIONS).settings)
    fresh = segment(image, model, [6, 1], OPTIONS)
    monkeypatch.setattr(pipeline, "preprocess", _refuse)

    first = segment(image, model, [6, 1], OPTIONS, feature_cache=cache, preprocessed=prepared)
    again = segment(image, model, [6, 1], OPTIONS, feature_cache=cache, preprocessed=prepared)

    assert not first.reused_features and again.reused_features and len(cache.entries()) == 1
    for result in (first, again):
        for index, mask in masks_of(fresh).items():
            np.testing.assert_array_equal(masks_of(result)[index], mask)
