"""Released layouts (keys from the spec manifests) and our own format load strictly and round-trip exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from UniversalSegLib.model import OFFICIAL_CLASS_NAMES
from UniversalSegLib.testing import random_model, write_random_checkpoint
from UniversalSegLib.weights.checkpoint import export_official, load_model, read_checkpoint, save_checkpoint

BACKBONES = ("swinunetr", "unet")


def _manifest_entries(spec_dir, backbone: str) -> list[dict]:
    return json.loads((spec_dir / f"universal_model_{backbone}_state_dict.json").read_text())["state_dict"]


def _random_released_state(spec_dir, backbone: str) -> tuple[dict, dict]:
    """A state dict keyed like the released file, built from the manifest alone (not from our mapping)."""
    generator = torch.Generator().manual_seed(7)
    released, ours = {}, {}
    for entry in _manifest_entries(spec_dir, backbone):
        dtype = getattr(torch, entry["dtype"])
        if dtype.is_floating_point:
            tensor = torch.randn(entry["shape"], generator=generator, dtype=dtype)
        else:
            tensor = torch.randint(0, 2197, entry["shape"], generator=generator, dtype=dtype)
        released[entry["released_ckpt_key"]] = tensor
        ours[entry["key"]] = tensor
    return released, ours


@pytest.mark.parametrize("backbone", BACKBONES)
def test_released_layout_from_manifest_loads_exactly(spec_dir, tmp_path, backbone):
    released, expected = _random_released_state(spec_dir, backbone)
    path = tmp_path / f"{backbone}.pth"
    torch.save({"net": released, "optimizer": {"state": {}, "param_groups": []}, "epoch": 499}, path)
    model = load_model(path)
    assert model.backbone_name == backbone and not model.training
    assert model.class_names == list(OFFICIAL_CLASS_NAMES)
    assert model.metadata["source_format"] == "official" and model.metadata["epoch"] == 499
    state = model.state_dict()
    assert list(state) == list(expected)
    assert all(torch.equal(state[key], value) for key, value in expected.items())

    exported = tmp_path / f"{backbone}_exported.pth"
    export_official(model, exported)
    written = torch.load(exported, map_location="cpu", weights_only=True)["net"]
    assert list(written) == list(released)
    assert all(torch.equal(written[key], value) for key, value in released.items())


def test_random_checkpoint_uses_the_released_keys(spec_dir, tmp_path):
    path = write_random_checkpoint(tmp_path / "unet.pth", backbone="unet", layout="official", seed=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert list(raw["net"]) == [entry["released_ckpt_key"] for entry in _manifest_entries(spec_dir, "unet")]
    model = load_model(path)
    reference = random_model("unet", seed=3)
    assert all(torch.equal(model.state_dict()[key], value) for key, value in reference.state_dict().items())


@pytest.mark.parametrize("variant", ["bare_released", "no_module_prefix", "nested_swin", "ours_bare"])
def test_other_key_layouts_are_accepted(tmp_path, variant):
    backbone = "swinunetr" if variant == "nested_swin" else "unet"
    reference = random_model(backbone, seed=5)
    ours = reference.state_dict()
    if variant == "bare_released":
        payload = {"module." + key: value for key, value in ours.items()}
    elif variant == "no_module_prefix":
        payload = {"net": dict(ours)}
    elif variant == "nested_swin":
        payload = {"state_dict": {"module." + key: value for key, value in ours.items()}}
    else:
        payload = dict(ours)
    path = tmp_path / "ckpt.pth"
    torch.save(payload, path)
    model = load_model(path)
    assert model.backbone_name == backbone
    assert all(torch.equal(model.state_dict()[key], value) for key, value in ours.items())


def test_numpy_scalar_entries_are_tolerated(tmp_path):
    reference = random_model("unet", seed=6)
    path = tmp_path / "np.pth"
    torch.save({"net": reference.state_dict(), "epoch": np.int64(42), "best": np.float64(0.5)}, path)
    model = load_model(path, backbone="unet")
    assert torch.equal(model.organ_embedding, reference.organ_embedding)


def test_our_format_round_trips_with_metadata(tmp_path):
    model = random_model("unet", seed=8, num_classes=34)
    names = [*OFFICIAL_CLASS_NAMES, "Thyroid", "Heart"]
    model.class_names = names
    path = save_checkpoint(
        model,
        tmp_path / "ours.pth",
        prompt_template="A CT of a {}",
        embedding_source="open_clip ViT-B-32",
        training_config={"lr": 1e-4, "epochs": 3},
    )
    loaded = load_model(path)
    assert loaded.num_classes == 34 and loaded.class_names == names
    assert loaded.metadata["training_config"] == {"lr": 1e-4, "epochs": 3}
    assert loaded.metadata["prompt_template"] == "A CT of a {}"
    assert loaded.metadata["embedding_source"] == "open_clip ViT-B-32"
    assert loaded.metadata["source_format"] == "universalseg"
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in model.state_dict().items())
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["format"] == "universalseg" and raw["format_version"] == 1
    assert raw["metadata"]["backbone"] == "unet" and "version" in raw["metadata"]


def test_model_extended_after_loading_saves_its_new_classes(tmp_path):
    path = write_random_checkpoint(tmp_path / "official.pth", backbone="unet")
    model = load_model(path)
    grown = torch.cat([model.organ_embedding, torch.randn(1, 512)])
    model.register_buffer("organ_embedding", grown)
    model.num_classes, model.class_names = 33, [*model.class_names, "Thyroid"]
    reloaded = load_model(save_checkpoint(model, tmp_path / "extended.pth"))
    assert reloaded.num_classes == 33 and reloaded.class_names[-1] == "Thyroid"
    assert reloaded.metadata["class_names"] == reloaded.class_names
    assert torch.equal(reloaded.organ_embedding, grown)


def test_rand_embedding_checkpoint_round_trips(tmp_path):
    model = random_model("unet", seed=9, encoding="rand_embedding")
    path = save_checkpoint(model, tmp_path / "rand.pth")
    loaded = read_checkpoint(path)
    assert loaded.encoding == "rand_embedding" and loaded.num_classes == 32
    assert torch.equal(load_model(path).organ_embedding.weight, model.organ_embedding.weight)


def test_writers_never_overwrite_silently(tmp_path):
    model = random_model("unet")
    path = tmp_path / "existing.pth"
    path.write_bytes(b"user data")
    with pytest.raises(FileExistsError):
        save_checkpoint(model, path)
    with pytest.raises(FileExistsError):
        export_official(model, path)
    assert path.read_bytes() == b"user data"
    save_checkpoint(model, path, overwrite=True)
    assert load_model(path).backbone_name == "unet"
    assert [p.name for p in tmp_path.iterdir()] == ["existing.pth"]  # no temp files left
