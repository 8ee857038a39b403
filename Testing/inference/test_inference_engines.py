"""The engines behind one interface: which one a run gets, and their class heads for replaying features."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions
from UniversalSegLib.inference.engines import choose_engine, engine_named
from UniversalSegLib.model import UniversalModel

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


def test_torch_predictor_is_the_model_and_the_heads_of_both_engines_agree(unet) -> None:
    torch_engine, openvino_engine = engine_named("torch"), engine_named("openvino")
    assert torch_engine.predictor(unet, InferenceOptions(), CPU, "fp32", None, None) is unet
    torch.manual_seed(1)
    image, head_features = torch.randn(2, 256), torch.randn(2, 8, 8, 8, 8)
    channels = [0, 5, 31]
    with torch.inference_mode():
        grouped = torch_engine.class_logits(unet)(image, head_features, channels)
        chunked = openvino_engine.class_logits(unet)(image, head_features, channels)
        direct = unet.class_logits(image, head_features, channels)
    assert grouped.shape == (2, 3, 8, 8, 8)
    assert torch.equal(grouped, direct)
    assert torch.allclose(grouped, chunked, atol=1e-4)
