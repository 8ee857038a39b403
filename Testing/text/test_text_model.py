"""Writing text embeddings into the real Universal Model (U-Net backbone, 32^3 input)."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.catalog import get_class, official_class_names
from UniversalSegLib.model import UniversalModel
from UniversalSegLib.text import extend_model_classes, set_class_embeddings


@pytest.fixture(scope="module")
def model_and_input():
    torch.manual_seed(0)
    model = UniversalModel("unet").eval()
    image = torch.rand(1, 1, 32, 32, 32)
    with torch.no_grad():
        reference = model(image)
    return model, image, reference


def test_replacing_one_embedding_changes_only_that_channel(model_and_input):
    model, image, reference = model_and_input
    channel = get_class("liver_tumor").channel
    original = model.organ_embedding.clone()
    try:
        set_class_embeddings(
            model, torch.randn(512, generator=torch.Generator().manual_seed(1)), channels=[channel]
        )
        assert not torch.equal(model.organ_embedding[channel], original[channel])
        with torch.no_grad():
            changed = model(image)
        others = [c for c in range(model.num_classes) if c != channel]
        assert torch.equal(changed[:, others], reference[:, others])
        assert not torch.equal(changed[:, channel], reference[:, channel])
    finally:
        set_class_embeddings(model, original)
    assert torch.equal(model.organ_embedding, original)


def test_set_all_embeddings_and_names(model_and_input):
    model, _, _ = model_and_input
    original = model.organ_embedding.clone()
    names = list(model.class_names)
    try:
        set_class_embeddings(model, original.flip(0).double(), names=list(reversed(names)))
        assert model.organ_embedding.dtype == torch.float32
        assert torch.equal(model.organ_embedding, original.flip(0))
        assert model.class_names == list(reversed(names))
    finally:
        set_class_embeddings(model, original, names=names)
    assert model.class_names == official_class_names()


@pytest.mark.parametrize(
    ("embeddings", "channels", "match"),
    [
        (torch.zeros(2, 512), None, "channels"),
        (torch.zeros(2, 512), [1], "2 embeddings"),
        (torch.zeros(1, 256), [1], r"\[K, 512\]"),
        (torch.zeros(1, 512), [32], "0-based"),
        (torch.full((1, 512), float("nan")), [0], "NaN"),
    ],
)
def test_set_class_embeddings_rejects_bad_input(model_and_input, embeddings, channels, match):
    model, _, _ = model_and_input
    with pytest.raises(ValueError, match=match):
        set_class_embeddings(model, embeddings, channels=channels)


def test_extend_model_adds_channels_and_keeps_the_original(model_and_input):
    model, image, reference = model_and_input
    liver = get_class("liver").channel
    new_rows = torch.stack([model.organ_embedding[liver], torch.randn(512)])
    extended = extend_model_classes(model, ["Liver again", "Gastric wall"], new_rows)
    assert extended.num_classes == 34 and model.num_classes == 32
    assert extended.organ_embedding.shape == (34, 512) and model.organ_embedding.shape == (32, 512)
    assert extended.class_names[-2:] == ["Liver again", "Gastric wall"]
    with torch.no_grad():
        out = extended(image)
        picked = extended(image, channels=[32, liver])
    assert out.shape[1] == 34
    # Another number of classes changes the controller's matrix shape, so allow float rounding here.
    torch.testing.assert_close(out[:, :32], reference, rtol=0, atol=1e-5)
    torch.testing.assert_close(out[:, 32], reference[:, liver], rtol=0, atol=1e-5)
    torch.testing.assert_close(picked[:, 0], reference[:, liver], rtol=0, atol=1e-5)
    assert (out[:, 33] - reference[:, liver]).abs().max() > 1e-3
    fresh = UniversalModel("unet", num_classes=34)
    fresh.load_state_dict(extended.state_dict(), strict=True)


def test_extend_model_rejects_bad_input(model_and_input):
    model, _, _ = model_and_input
    with pytest.raises(ValueError, match="unique"):
        extend_model_classes(model, ["liver"], torch.zeros(1, 512))
    with pytest.raises(ValueError, match="2 names"):
        extend_model_classes(model, ["a", "b"], torch.zeros(1, 512))
    learned = UniversalModel("unet", encoding="rand_embedding")
    with pytest.raises(ValueError, match="word_embedding"):
        set_class_embeddings(learned, torch.zeros(1, 512), channels=[0])
