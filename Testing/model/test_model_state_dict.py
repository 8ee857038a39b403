"""The model's state dict equals the official one (keys, order, shapes, dtypes) and the parameter counts."""

from __future__ import annotations

import json

import pytest

from UniversalSegLib.model import UniversalModel

BACKBONES = ("swinunetr", "unet")


def _manifest(spec_dir, backbone: str) -> dict:
    return json.loads((spec_dir / f"universal_model_{backbone}_state_dict.json").read_text())


def _param_count(module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize("backbone", BACKBONES)
def test_state_dict_equals_manifest(spec_dir, backbone):
    manifest = _manifest(spec_dir, backbone)
    model = UniversalModel(backbone)
    ours = [
        (key, list(value.shape), str(value.dtype).removeprefix("torch."))
        for key, value in model.state_dict().items()
    ]
    expected = [(entry["key"], entry["shape"], entry["dtype"]) for entry in manifest["state_dict"]]
    assert ours == expected
    assert len(ours) == manifest["num_state_dict_entries"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_parameter_and_buffer_counts(spec_dir, backbone):
    summary = json.loads((spec_dir / "universal_model_summary.json").read_text())["backbones"][backbone]
    model = UniversalModel(backbone)
    assert _param_count(model) == summary["total_parameter_count"]
    assert _param_count(model.backbone) == summary["backbone_parameter_count"]
    assert _param_count(model) - _param_count(model.backbone) == summary["head_parameter_count"]
    assert sum(buffer.numel() for buffer in model.buffers()) == summary["buffer_element_count"]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_rand_embedding_variant(spec_dir, backbone):
    variant = _manifest(spec_dir, backbone)["rand_embedding_variant"]
    model = UniversalModel(backbone, encoding="rand_embedding")
    assert _param_count(model) == variant["total_parameter_count"]
    assert list(model.organ_embedding.weight.shape) == variant["organ_embedding"]["shape"]
    assert not hasattr(model, "text_to_vision")


def test_num_classes_is_configurable():
    model = UniversalModel("unet", num_classes=35)
    assert model.organ_embedding.shape == (35, 512)
    assert model.class_names[24] == "Celiac Truck"
    assert model.class_names[34] == "class_35"


def test_bad_constructor_arguments_are_rejected():
    with pytest.raises(ValueError, match="unknown backbone"):
        UniversalModel("resnet")
    with pytest.raises(ValueError, match="unknown encoding"):
        UniversalModel("unet", encoding="one_hot")
