"""Bad checkpoint files raise CheckpointError with a message naming the file and the problem."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.testing import random_model, write_random_checkpoint
from UniversalSegLib.weights import CheckpointError, load_model


@pytest.fixture(scope="module")
def unet_state() -> dict:
    return {"module." + key: value for key, value in random_model("unet").state_dict().items()}


def _save(tmp_path, payload, name="bad.pth"):
    path = tmp_path / name
    torch.save(payload, path)
    return path


def test_error_is_a_value_error():
    assert issubclass(CheckpointError, ValueError)


def test_garbage_bytes(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a checkpoint\x00\x01" * 50)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_truncated_file(tmp_path):
    path = write_random_checkpoint(tmp_path / "full.pth", backbone="unet")
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as info:
        load_model(truncated)
    assert str(truncated) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_model(tmp_path / "nope.pth")


def test_missing_key(tmp_path, unet_state):
    state = dict(unet_state)
    del state["module.backbone.up_tr64.ops.1.conv1.weight"]
    path = _save(tmp_path, {"net": state})
    with pytest.raises(CheckpointError) as info:
        load_model(path)
    message = str(info.value)
    assert str(path) in message and "missing keys (1)" in message
    assert "backbone.up_tr64.ops.1.conv1.weight" in message


def test_extra_key(tmp_path, unet_state):
    path = _save(tmp_path, {"net": {**unet_state, "module.extra_head.weight": torch.zeros(3)}})
    with pytest.raises(CheckpointError, match=r"unexpected keys \(1\): extra_head\.weight"):
        load_model(path)


def test_wrong_shape(tmp_path, unet_state):
    state = dict(unet_state)
    state["module.controller.bias"] = torch.zeros(152)
    path = _save(tmp_path, {"net": state})
    with pytest.raises(
        CheckpointError, match=r"wrong shapes \(1\): controller\.bias \(file \(152,\), model \(153,\)\)"
    ):
        load_model(path)


def test_many_missing_keys_are_truncated(tmp_path, unet_state):
    state = {
        key: value for key, value in unet_state.items() if "up_tr" not in key or "up_tr256.up_conv" in key
    }
    path = _save(tmp_path, {"net": state})
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): .*and \d+ more"):
        load_model(path)


def test_unknown_backbone(tmp_path):
    payload = {
        "net": {"module.backbone.stem.weight": torch.zeros(2), "module.organ_embedding": torch.zeros(32, 512)}
    }
    with pytest.raises(CheckpointError, match="cannot tell the backbone"):
        load_model(_save(tmp_path, payload))


def test_unsupported_official_backbone(tmp_path):
    payload = {"net": {"module.backbone.conv_0_0.conv_0.conv.weight": torch.zeros(2)}}
    with pytest.raises(CheckpointError, match="'unetpp' is not supported"):
        load_model(_save(tmp_path, payload))


def test_backbone_mismatch(tmp_path, unet_state):
    with pytest.raises(CheckpointError, match="holds a 'unet' model, but backbone='swinunetr'"):
        load_model(_save(tmp_path, {"net": unet_state}), backbone="swinunetr")


def test_not_a_state_dict(tmp_path):
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_model(_save(tmp_path, [1, 2, 3]))
    with pytest.raises(CheckpointError, match="no state dict found"):
        load_model(_save(tmp_path, {"epoch": 3}, name="meta.pth"))


class _Arbitrary:
    pass


def test_arbitrary_pickled_objects_are_refused(tmp_path, unet_state):
    path = _save(tmp_path, {"net": unet_state, "args": _Arbitrary()})
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_model(path)
