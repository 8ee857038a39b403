"""The OpenVINO CPU engine: same logits as PyTorch, converted once and cached, used by ``segment``."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions, estimate, segment
from UniversalSegLib.inference.engines import openvino_convert, openvino_encoder, openvino_prepare
from UniversalSegLib.inference.engines.openvino_encoder import compiled_encoder, encoder_key
from UniversalSegLib.inference.engines.openvino_engine import OpenVINOPredictor
from UniversalSegLib.model import UniversalModel
from UniversalSegLib.privacy import disable_third_party_telemetry

disable_third_party_telemetry()  # before the tests import openvino or nncf: they send nothing either
pytest.importorskip("openvino")

ROI = [32, 32, 32]
CHANNELS = [0, 5, 10, 31]


def _unet(seed: int = 0) -> UniversalModel:
    torch.manual_seed(seed)
    return UniversalModel("unet").eval()


@pytest.fixture(scope="module")
def unet() -> UniversalModel:
    return _unet()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("openvino_cache")


@pytest.fixture(scope="module")
def compiled_fp32(unet, cache_dir):
    return compiled_encoder(unet, ROI, "fp32", cache_dir=cache_dir)


@pytest.fixture
def ct_crop(ct_dir) -> torch.Tensor:
    """Two 32³ windows of the real CT after the official intensity scaling."""
    image = sitk.ReadImage(str(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"))
    array = sitk.GetArrayFromImage(image).astype(np.float32)  # (z, y, x)
    scaled = np.clip((array + 175.0) / 425.0, 0.0, 1.0)
    windows = [scaled[0:30, 40:72, 40:72], scaled[0:30, 50:82, 20:52]]
    padded = [np.pad(w, ((0, 2), (0, 0), (0, 0))) for w in windows]
    return torch.from_numpy(np.stack(padded))[:, None]


def test_openvino_logits_equal_pytorch(unet, compiled_fp32, ct_crop) -> None:
    predictor = OpenVINOPredictor(unet, compiled_fp32)
    unet.per_sample_norm = True  # OpenVINO runs the windows of a batch one at a time
    try:
        with torch.inference_mode():
            expected = unet(ct_crop, channels=CHANNELS)
            got = predictor(ct_crop, channels=CHANNELS)
    finally:
        unet.per_sample_norm = False
    assert got.shape == expected.shape == (2, len(CHANNELS), *ROI)
    assert float((got - expected).abs().max()) < 1e-3
    assert float((torch.sigmoid(got) - torch.sigmoid(expected)).abs().max()) < 1e-4


def test_bf16_compiles_and_stays_close(unet, cache_dir, ct_crop) -> None:
    compiled = compiled_encoder(unet, ROI, "bf16", cache_dir=cache_dir)
    with torch.inference_mode():
        expected = torch.sigmoid(unet(ct_crop[:1], channels=CHANNELS))
        got = torch.sigmoid(OpenVINOPredictor(unet, compiled)(ct_crop[:1], channels=CHANNELS))
    assert float((got - expected).abs().max()) < 0.05


def test_converted_encoder_is_stored_once_and_reused(unet, compiled_fp32, cache_dir, monkeypatch) -> None:
    stored = list(cache_dir.glob("unet-32x32x32-*/encoder.xml"))
    assert len(stored) == 1 and stored[0].with_suffix(".bin").is_file()
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no staging folder left
    openvino_encoder._COMPILED.clear()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again instead of loading the stored model")

    monkeypatch.setattr(openvino_encoder, "prepare_encoder_files", no_conversion)
    assert compiled_encoder(unet, ROI, "fp32", cache_dir=cache_dir) is not None


def test_key_follows_the_weights_but_not_unused_running_statistics() -> None:
    model = _unet()
    key = encoder_key(model, ROI, "ov")
    assert key.startswith("unet-32x32x32-")
    assert encoder_key(model, [64, 64, 64], "ov") != key
    assert encoder_key(model, ROI, "other version") != key
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    bn.running_mean += 1.0
    assert encoder_key(model, ROI, "ov") == key
    with torch.no_grad():
        model.precls_conv[2].weight.add_(0.01)
    changed = encoder_key(model, ROI, "ov")
    assert changed != key
    with torch.no_grad():
        model.precls_conv[2].weight = torch.nn.Parameter(model.precls_conv[2].weight + 0.01)  # replaced
    assert encoder_key(model, ROI, "ov") not in (key, changed)


def test_key_is_hashed_once_per_model_state(monkeypatch) -> None:
    model = _unet()
    key = encoder_key(model, ROI, "ov")
    hashed: list[int] = []
    original = openvino_encoder.hashlib.blake2b
    monkeypatch.setattr(openvino_encoder.hashlib, "blake2b", lambda **kw: hashed.append(1) or original(**kw))
    assert encoder_key(model, ROI, "ov") == key and not hashed  # remembered
    model.load_state_dict(_unet(seed=1).state_dict())  # copied in place: new weights, same tensors
    assert encoder_key(model, ROI, "ov") != key and len(hashed) == 1


def test_segment_with_the_openvino_engine_matches_pytorch(ct_dir, unet, compiled_fp32) -> None:
    image = sitk.ReadImage(str(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"))[40:70, 30:60, 5:25]
    classes = [1, 6, 11]
    stages: list[str] = []
    common = {"device": "cpu", "roi_size": 32, "postprocess": False}
    torch_result = segment(image, unet, classes, InferenceOptions(**common), keep_probabilities=True)
    ov_result = segment(
        image,
        unet,
        classes,
        InferenceOptions(engine="openvino", **common),
        progress=lambda event: stages.append(event.stage),
        keep_probabilities=True,
    )
    assert "compile" in stages and ov_result.warnings == []
    assert ov_result.windows == torch_result.windows > 1
    for index in classes:
        difference = np.abs(
            ov_result.probabilities[index].astype(np.float32)
            - torch_result.probabilities[index].astype(np.float32)
        )
        assert difference.max() < 2e-3  # float16-stored probabilities
        torch_mask = sitk.GetArrayViewFromImage(torch_result.masks[index])
        ov_mask = sitk.GetArrayViewFromImage(ov_result.masks[index])
        assert np.mean(torch_mask != ov_mask) < 1e-3


def test_other_predictors_fall_back_to_torch_with_a_warning(example_ct, threshold_predictor) -> None:
    options = InferenceOptions(device="cpu", roi_size=16, engine="openvino", postprocess=False)
    result = segment(example_ct[45:61, 35:51, 10:26], threshold_predictor, [6], options)
    assert threshold_predictor.windows == result.windows > 0
    assert any("needs a UniversalModel" in message for message in result.warnings)


def test_missing_openvino_says_how_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(InferenceError, match="pip install openvino"):
        openvino_convert.require_openvino()


def test_unknown_engine_is_rejected() -> None:
    with pytest.raises(InferenceError, match="engine must be one of"):
        InferenceOptions(engine="onnx")


def test_estimate_keeps_openvino_rates_apart_and_scales_the_probe(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path))
    extent = (300.0, 250.0, 200.0)
    torch_run = estimate.estimate_run(extent, "swinunetr", "cpu", "fp32", 0.5, probe=lambda: 12.0)
    openvino_run = estimate.estimate_run(
        extent, "swinunetr", "cpu", "fp32", 0.5, probe=lambda: 12.0, engine="openvino"
    )
    assert torch_run.seconds_per_window == 12.0
    speedup = estimate.OPENVINO_SPEEDUP[("swinunetr", "fp32")]
    assert openvino_run.seconds_per_window == pytest.approx(12.0 / speedup)
    estimate.record_run("swinunetr", "cpu", "fp32", 1, network_s=30.0, windows=10, engine="openvino")
    again = estimate.estimate_run(extent, "swinunetr", "cpu", "fp32", 0.5, engine="openvino")
    assert (again.seconds_per_window, again.source) == (3.0, "last run")
    assert estimate.estimate_run(extent, "swinunetr", "cpu", "fp32", 0.5).seconds_per_window == 12.0


def test_unwritable_cache_still_runs(unet, tmp_path) -> None:
    """A cache that cannot be written costs the next run a conversion, never this run."""

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would be")
    openvino_encoder._COMPILED.clear()
    compiled = compiled_encoder(unet, [16, 16, 16], "fp32", cache_dir=blocked / "cache")
    assert compiled is not None and blocked.is_file()
    assert openvino_prepare._KEPT and (openvino_prepare._KEPT[-1] / "float" / "encoder.xml").is_file()
    openvino_prepare._remove_kept()  # what happens at exit


def test_int8_is_quantized_once_stored_and_stays_close(unet, cache_dir, ct_crop, monkeypatch) -> None:
    from UniversalSegLib.inference.engines import openvino_quantize

    pytest.importorskip("nncf")
    messages: list[str] = []
    compiled = compiled_encoder(unet, ROI, "int8", cache_dir=cache_dir, status=messages.append)
    assert any("int8" in message for message in messages)
    stored = openvino_encoder.stored_encoder_path(unet, ROI, cache_dir, precision="int8")
    assert stored is not None and stored.parent.name == openvino_quantize.INT8_FOLDER
    assert stored.parent.parent == openvino_encoder.stored_encoder_path(unet, ROI, cache_dir).parent
    with torch.inference_mode():
        expected = unet(ct_crop[:1], channels=CHANNELS)
        got = OpenVINOPredictor(unet, compiled)(ct_crop[:1], channels=CHANNELS)
    # Quantized (not the float model), yet close. On this random U-Net, torch 2.14.1 with OpenVINO 2026.4 and
    # NNCF 3.3 or 3.4 gives a largest error of 10.5% of the largest logit, an RMS error of 6.6% and 98.1% of
    # the voxels on the same side of 0; real fidelity (Dice) is measured by benchmarks/speed_modes.py.
    peak_error = float((got - expected).abs().max() / expected.abs().max())
    rms_error = float((got - expected).pow(2).mean().sqrt() / expected.pow(2).mean().sqrt())
    same_side = float(((got > 0) == (expected > 0)).float().mean())
    assert 0 < rms_error < 0.1 and peak_error < 0.15 and same_side > 0.97
    openvino_encoder._COMPILED.clear()

    def no_quantization(*args, **kwargs):
        raise AssertionError("quantized again instead of loading the stored int8 model")

    monkeypatch.setattr(openvino_encoder, "prepare_encoder_files", no_quantization)
    again = compiled_encoder(unet, ROI, "int8", cache_dir=cache_dir)
    with torch.inference_mode():
        assert torch.equal(OpenVINOPredictor(unet, again)(ct_crop[:1], channels=CHANNELS), got)


def _concatenation_readers(encoder) -> list:
    return [
        operation
        for operation in encoder.get_ordered_ops()
        if operation.get_type_name() == "Convolution"
        and operation.input(0).get_source_output().get_node().get_type_name() == "Concat"
    ]


def test_convolutions_reading_a_concatenation_are_split_into_the_same_function(
    unet, compiled_fp32, cache_dir, ct_crop
) -> None:
    import openvino

    from UniversalSegLib.inference.engines.openvino_quantize import split_concatenated_convolutions

    core = openvino.Core()
    stored = str(openvino_encoder.stored_encoder_path(unet, ROI, cache_dir))
    encoder = core.read_model(stored)
    readers = len(_concatenation_readers(encoder))
    assert readers >= 3  # one per U-Net decoder level
    assert split_concatenated_convolutions(encoder) == readers
    assert not _concatenation_readers(encoder)
    window = ct_crop[:1].numpy()
    expected = core.compile_model(stored, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([window])
    got = core.compile_model(encoder, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})([window])
    for index in range(2):
        scale = float(np.abs(expected[index]).max())
        assert float(np.abs(got[index] - expected[index]).max()) <= 1e-4 * scale


def test_int8_gives_each_concatenated_input_its_own_quantizer(unet, cache_dir) -> None:
    import openvino

    pytest.importorskip("nncf")
    compiled_encoder(unet, ROI, "int8", cache_dir=cache_dir)
    stored = openvino_encoder.stored_encoder_path(unet, ROI, cache_dir, precision="int8")
    quantized = openvino.Core().read_model(str(stored))
    parts = [
        operation
        for operation in quantized.get_ordered_ops()
        if operation.get_type_name() == "Convolution" and "/part" in operation.get_friendly_name()
    ]
    assert len(parts) >= 6 and not _concatenation_readers(quantized)
    sources = {part.input(0).get_source_output().get_node().get_type_name() for part in parts}
    assert sources == {"FakeQuantize"}


def test_int8_keeps_the_input_and_pre_head_convolutions_in_float(unet, cache_dir) -> None:
    import openvino

    from UniversalSegLib.inference.engines.openvino_quantize import float_operations

    encoder = openvino.Core().read_model(str(openvino_encoder.stored_encoder_path(unet, ROI, cache_dir)))
    names = float_operations(encoder)
    assert any("precls_conv" in name for name in names)
    assert any(name.startswith("__module.model.backbone.") for name in names)  # the first convolution
    assert len(names) == 2


def test_int8_without_nncf_says_how_to_install(monkeypatch) -> None:
    from UniversalSegLib.inference.engines.openvino_quantize import require_nncf

    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(InferenceError, match="pip install nncf"):
        require_nncf()


def test_int8_needs_the_openvino_engine(example_ct, threshold_predictor) -> None:
    with pytest.raises(InferenceError, match="--engine openvino"):
        InferenceOptions(precision="int8")
    options = InferenceOptions(
        device="cpu", roi_size=16, engine="openvino", precision="int8", postprocess=False
    )
    result = segment(example_ct[45:61, 35:51, 10:26], threshold_predictor, [6], options)
    assert any("int8 needs the OpenVINO engine" in message for message in result.warnings)
