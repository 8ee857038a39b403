"""The engines behind one interface: which one a run gets, and their class heads for replaying features."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions
from UniversalSegLib.inference.engines import choose_engine, engine_named
from UniversalSegLib.model import UniversalModel
from UniversalSegLib.model.dynamic_heads import apply_dynamic_heads_by_chunks

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.fixture(scope="module")
def unet() -> UniversalModel:
    torch.manual_seed(0)
    return UniversalModel("unet").eval()


def test_openvino_is_chosen_where_it_can_run_and_torch_with_a_reason_elsewhere(unet) -> None:
    options = InferenceOptions(engine="openvino", device="cpu")
    warnings: list[str] = []
    assert choose_engine(unet, options, CPU, warnings).name == "openvino" and not warnings
    assert choose_engine(unet, options, CUDA, warnings).name == "torch"
    assert choose_engine(lambda x, channels=None: x, options, CPU, warnings).name == "torch"
    assert len(warnings) == 2 and "CPU only" in warnings[0] and "UniversalModel" in warnings[1]
    assert choose_engine(unet, InferenceOptions(device="cpu"), CPU, warnings).name == "torch"
    assert len(warnings) == 2


def test_unknown_engine_names_the_known_ones() -> None:
    with pytest.raises(InferenceError, match="torch"):
        engine_named("tensorrt")


def test_torch_heads_are_chunked_products_on_the_cpu_and_convolutions_elsewhere(unet) -> None:
    torch_engine, openvino_engine = engine_named("torch"), engine_named("openvino")
    assert torch_engine.predictor(unet, InferenceOptions(), CUDA, "fp32", None, None) is unet
    cpu_predictor = torch_engine.predictor(unet, InferenceOptions(), CPU, "fp32", None, None)
    torch.manual_seed(1)
    image, head_features = torch.randn(2, 256), torch.randn(2, 8, 8, 8, 8)
    channels = [0, 5, 31]
    with torch.inference_mode():
        cpu_heads = torch_engine.class_logits(unet, CPU)(image, head_features, channels)
        gpu_heads = torch_engine.class_logits(unet, CUDA)(image, head_features, channels)
        chunked = openvino_engine.class_logits(unet, CPU)(image, head_features, channels)
        direct = unet.class_logits(image, head_features, channels)
        window = torch.rand(1, 1, 16, 16, 16)
        predicted = cpu_predictor(window, channels=channels)
        expected = unet.class_logits(
            *unet.image_features(window), channels, heads=apply_dynamic_heads_by_chunks
        )
    assert cpu_heads.shape == (2, 3, 8, 8, 8)
    assert torch.equal(cpu_heads, chunked) and torch.equal(
        gpu_heads, direct
    )  # replay = the engine's own heads
    assert torch.allclose(cpu_heads, direct, atol=1e-4)
    assert torch.equal(predicted, expected)
    with pytest.raises(ValueError, match="channels"):
        cpu_predictor(window, channels=[32])
