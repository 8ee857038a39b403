"""Speed modes (presets → options, honoured by ``segment``) and the run-time estimate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions, estimate, segment
from UniversalSegLib.inference.device import autocast_precision, precision_for_device
from UniversalSegLib.inference.preprocessing import preprocess
from UniversalSegLib.inference.sliding_window import count_windows
from UniversalSegLib.inference.speed import SPEED_MODES, options_for_speed, speed_preset


class RecordingPredictor:
    """Threshold logits; records batch sizes and the autocast dtype active in each call."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.autocast: list[torch.dtype | None] = []

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        self.batches.append(x.shape[0])
        enabled = torch.is_autocast_enabled("cpu")
        self.autocast.append(torch.get_autocast_dtype("cpu") if enabled else None)
        return (10.0 * (x - 0.5)).repeat(1, len(channels or [0]), 1, 1, 1)


class _ConvPredictor(torch.nn.Module):
    """A one-convolution stand-in for the model (the probe only needs ``model(x, channels=...)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        return self.conv(x)[:, : len(channels or [0, 1])]


@pytest.fixture
def tiny_ct(example_ct) -> sitk.Image:
    """16×16×16 voxels (3 mm) inside the body: 32³ on the 1.5 mm grid."""
    return example_ct[45:61, 35:51, 10:26]


def test_faithful_is_the_official_default_everywhere() -> None:
    official = InferenceOptions(device="cpu")
    for device_type, bf16 in (("cpu", True), ("cpu", False), ("cuda", None), ("mps", None)):
        for openvino in (True, False):
            preset = speed_preset("faithful", device_type, cpu_bf16=bf16, openvino=openvino)
            assert (preset.overlap, preset.precision, preset.sw_batch_size, preset.blend, preset.engine) == (
                official.overlap,
                official.precision,
                official.sw_batch_size,
                official.blend,
                official.engine,
            )
    assert options_for_speed("faithful", "cpu") == official


def _presets(device_type: str, **flags: bool) -> dict:
    return {mode: speed_preset(mode, device_type, **flags) for mode in SPEED_MODES}


def test_faster_modes_change_only_the_levers_that_paid() -> None:
    openvino_bf16 = _presets("cpu", cpu_bf16=True, openvino=True, nncf=True)
    assert openvino_bf16["balanced"].engine == openvino_bf16["fast"].engine == "openvino"
    assert (openvino_bf16["balanced"].precision, openvino_bf16["fast"].precision) == ("bf16", "int8")
    assert openvino_bf16["balanced"].overlap == openvino_bf16["fast"].overlap == 0.5  # official windows
    without_nncf = _presets("cpu", cpu_bf16=True, openvino=True, nncf=False)
    assert without_nncf["fast"].precision == "bf16" and "NNCF" in without_nncf["fast"].note
    assert without_nncf["balanced"] == openvino_bf16["balanced"]
    openvino_fp32 = _presets("cpu", cpu_bf16=False, openvino=True)
    assert {preset.precision for preset in openvino_fp32.values()} == {"fp32"}  # bf16 is slow there
    assert openvino_fp32["fast"].overlap < openvino_fp32["balanced"].overlap
    torch_bf16 = _presets("cpu", cpu_bf16=True, openvino=False)
    assert torch_bf16["balanced"].precision == torch_bf16["fast"].precision == "bf16"
    assert torch_bf16["fast"].overlap < torch_bf16["balanced"].overlap
    torch_fp32 = _presets("cpu", cpu_bf16=False, openvino=False)
    assert {preset.precision for preset in torch_fp32.values()} == {"fp32"}
    assert torch_fp32["fast"].overlap < torch_fp32["balanced"].overlap < 0.5
    cuda = _presets("cuda")
    assert cuda["fast"].precision == "fp16" and cuda["fast"].sw_batch_size > 1
    assert {preset.engine for preset in cuda.values()} == {"torch"}
    for presets in (openvino_bf16, openvino_fp32, torch_bf16, torch_fp32, cuda):
        assert all(preset.blend == "gaussian" and preset.note for preset in presets.values())
    for presets in (torch_bf16, torch_fp32, cuda):
        assert {preset.engine for preset in presets.values()} == {"torch"}


def test_explicit_options_override_the_mode_and_bad_input_is_named() -> None:
    options = options_for_speed("fast", "cpu", overlap=0.5, precision="fp32", sw_batch_size=2, roi_size=32)
    assert (options.overlap, options.precision, options.sw_batch_size, options.roi_size) == (
        0.5,
        "fp32",
        2,
        32,
    )
    assert options_for_speed("fast", "cpu", postprocess=False).postprocess is False
    with pytest.raises(InferenceError, match="faithful, balanced, fast"):
        options_for_speed("turbo", "cpu")
    with pytest.raises(InferenceError, match="unknown inference option"):
        options_for_speed("fast", "cpu", overlapp=0.1)
    with pytest.raises(InferenceError, match="overlap"):
        options_for_speed("fast", "cpu", overlap=1.0)


def test_fp16_on_a_cpu_falls_back_to_a_cpu_precision() -> None:
    cpu = torch.device("cpu")
    assert precision_for_device("fp16", cpu) in ("bf16", "fp32")
    assert precision_for_device("bf16", cpu) == "bf16" and precision_for_device("fp32", cpu) == "fp32"
    assert precision_for_device("fp16", torch.device("cuda")) == "fp16"


@pytest.mark.parametrize("mode", SPEED_MODES)
def test_segment_honours_each_mode(tiny_ct, mode) -> None:
    options = options_for_speed(mode, "cpu", roi_size=16)
    predictor = RecordingPredictor()
    result = segment(tiny_ct, predictor, [6], options, keep_probabilities=True)
    prepared = preprocess(tiny_ct)
    expected_windows = count_windows(prepared.shape, [16] * 3, options.overlap)
    assert result.windows == sum(predictor.batches) == expected_windows
    assert max(predictor.batches) == min(options.sw_batch_size, expected_windows)
    torch_precision = autocast_precision(options.precision, torch.device("cpu"))  # int8: only in OpenVINO
    expected_dtype = {"fp32": None, "bf16": torch.bfloat16}[torch_precision]
    assert set(predictor.autocast) == {expected_dtype}
    assert 0 < result.timings["network"] <= result.timings["inference"] <= result.timings["total"]
    probabilities = result.probabilities[6]
    assert probabilities.dtype == np.float16 and probabilities.shape == prepared.shape
    assert result.masks[6].GetSize() == tiny_ct.GetSize()
    assert (
        result.probabilities is not None and segment(tiny_ct, predictor, [6], options).probabilities is None
    )


def test_window_count_matches_the_sliding_window() -> None:
    for shape in ((96, 96, 96), (97, 96, 40), (241, 191, 59), (274, 274, 167)):
        for overlap in (0.0, 0.25, 0.5):
            assert estimate.window_count(shape, overlap) == count_windows(shape, [96] * 3, overlap)
    assert estimate.resampled_shape((363.0, 288.0, 90.0)) == (242, 192, 60)
    with pytest.raises(ValueError, match="overlap"):
        estimate.window_count((10, 10, 10), 1.0)


def test_foreground_extent_ignores_air() -> None:
    array = np.full((20, 30, 40), -1000, dtype=np.int16)  # (z, y, x)
    array[5:15, 10:20, 4:36] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.8, 1.0, 2.5))
    assert estimate.foreground_extent_mm(image) == pytest.approx((32 * 0.8, 10 * 1.0, 10 * 2.5))
    empty = sitk.GetImageFromArray(np.full((4, 5, 6), -1000, dtype=np.int16))
    assert estimate.foreground_extent_mm(empty) == (6.0, 5.0, 4.0)


def test_estimate_probes_once_then_uses_the_cache_and_the_last_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path))
    calls = []

    def probe() -> float:
        calls.append(1)
        return 2.0

    extent = (300.0, 250.0, 150.0)  # 200 × 167 × 100 voxels at 1.5 mm
    first = estimate.estimate_run(extent, "unet", "cpu", "bf16", 0.5, probe=probe)
    again = estimate.estimate_run(extent, "unet", "cpu", "bf16", 0.5, probe=probe)
    assert calls == [1] and first.source == "probe" and again.seconds_per_window == 2.0
    assert first.windows == count_windows((200, 167, 100), [96] * 3, 0.5)
    assert first.seconds == pytest.approx(first.windows * 2.0 * estimate.OVERHEAD_FACTOR)
    fewer = estimate.estimate_run(extent, "unet", "cpu", "bf16", 0.0, probe=probe)
    assert fewer.windows < first.windows
    estimate.record_run("unet", "cpu", "bf16", 1, network_s=30.0, windows=10)
    assert estimate.estimate_run(extent, "unet", "cpu", "bf16", 0.5).source == "last run"
    assert estimate.estimate_run(extent, "unet", "cpu", "bf16", 0.5).seconds_per_window == 3.0
    table = estimate.estimate_run(extent, "swinunetr", "cpu", "fp32", 0.5)
    assert table.source == "table" and table.seconds_per_window > 0
    assert (tmp_path / estimate.CACHE_FILE).is_file()


def test_estimate_text_and_probe() -> None:
    assert estimate.format_duration(12.2) == "13 s"
    assert estimate.format_duration(185) == "4 min"
    assert estimate.format_duration(3 * 3600 + 65) == "3 h 2 min"
    text = estimate.RunEstimate(
        windows=20, seconds_per_window=10.0, source="probe", device_type="cpu"
    ).describe()
    assert text == "about 4 min on CPU (20 windows)"
    model = _ConvPredictor().train()
    seconds = estimate.probe_seconds_per_window(model, "cpu", "fp32", size=16)
    assert seconds > 0 and model.training  # mode restored


def test_option_fields_unchanged_by_presets() -> None:
    """Presets set only overlap/precision/batch/blend/device/engine: other fields keep the defaults."""
    defaults = InferenceOptions()
    for mode in SPEED_MODES:
        options = options_for_speed(mode, "cpu")
        for field in dataclasses.fields(InferenceOptions):
            if field.name not in ("overlap", "precision", "sw_batch_size", "blend", "device", "engine"):
                assert getattr(options, field.name) == getattr(defaults, field.name)


def test_packed_resampling_equals_one_mask_at_a_time(example_ct) -> None:
    from UniversalSegLib.inference.pipeline import _group_to_input_grid
    from UniversalSegLib.inference.resampling import mask_to_input_grid

    image = example_ct[30:70, 20:60, 5:20]
    prepared = preprocess(image)
    rng = np.random.default_rng(0)
    masks = {index: rng.random(prepared.shape) > 0.6 for index in (1, 2, 3, 6, 7, 8, 9, 11)}
    packed = _group_to_input_grid(masks, prepared.affine, image)
    assert list(packed) == list(masks)
    for index, mask in masks.items():
        alone = mask_to_input_grid(mask, prepared.affine, image)
        assert packed[index].GetSize() == image.GetSize() and packed[index].GetOrigin() == image.GetOrigin()
        assert packed[index].GetDirection() == image.GetDirection()
        np.testing.assert_array_equal(sitk.GetArrayFromImage(packed[index]), sitk.GetArrayFromImage(alone))
        assert packed[index].GetPixelID() == alone.GetPixelID()
