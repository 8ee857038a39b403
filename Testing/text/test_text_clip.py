"""open_clip text embeddings on a randomly initialised ViT-B-32 (no downloads)."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.text import (
    ClipWeightsError,
    EmbeddingCache,
    compute_text_embeddings,
    create_clip_model,
    default_cache_dir,
)
from UniversalSegLib.text.clip_embeddings import resolve_quick_gelu

open_clip = pytest.importorskip("open_clip")

NAMES = ["Liver", "Kidney Tumor", "Celiac Truck"]


@pytest.fixture(scope="module")
def random_clip():
    """A randomly initialised open_clip ViT-B-32, made through our creation path."""
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="randomly initialised"):
        model = create_clip_model("ViT-B-32", pretrained=None)
    assert isinstance(model, open_clip.CLIP) and not model.training
    return model, open_clip.get_tokenizer("ViT-B-32")


class CountingEncoder(torch.nn.Module):
    """Wraps a CLIP model and records the prompts and rows it encodes."""

    def __init__(self, clip, tokenizer):
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.prompts: list[str] = []
        self.rows = 0

    def tokenize(self, prompts):
        self.prompts.extend(prompts)
        return self.tokenizer(prompts)

    def encode_text(self, tokens):
        self.rows += tokens.shape[0]
        return self.clip.encode_text(tokens)


def test_embeddings_are_raw_encode_text_of_exact_prompts(random_clip):
    clip, tokenizer = random_clip
    counter = CountingEncoder(clip, tokenizer)
    embeddings = compute_text_embeddings(NAMES, clip_model=counter, tokenizer=counter.tokenize, cache=False)
    assert embeddings.shape == (3, 512) and embeddings.dtype == torch.float32
    assert counter.prompts == [f"A computerized tomography of a {name}" for name in NAMES]
    with torch.no_grad():
        expected = clip.encode_text(tokenizer(counter.prompts))
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-5)
    assert not torch.allclose(embeddings.norm(dim=1), torch.ones(3)), "must not be L2-normalised"
    assert not torch.equal(embeddings[0], embeddings[1])


def test_cache_hit_avoids_recomputation(random_clip, tmp_path):
    clip, tokenizer = random_clip
    cache = EmbeddingCache(tmp_path / "embeddings")
    counter = CountingEncoder(clip, tokenizer)
    options = dict(clip_model=counter, tokenizer=counter.tokenize, pretrained="random-seed0", cache=cache)
    first = compute_text_embeddings(NAMES, **options)
    assert counter.rows == 3 and len(list(cache.directory.iterdir())) == 3, "one file per entry, no leftovers"
    again = compute_text_embeddings(NAMES, **options)
    assert counter.rows == 3
    assert torch.equal(first, again)
    mixed = compute_text_embeddings(["Spleen", "Liver"], **options)
    assert counter.rows == 4 and counter.prompts[-1] == "A computerized tomography of a Spleen"
    assert torch.equal(mixed[1], first[0])
    compute_text_embeddings(["Liver"], template="ct_scan", **options)
    assert counter.rows == 5, "another template is another cache key"
    compute_text_embeddings(["Liver"], **{**options, "pretrained": "other-weights"})
    assert counter.rows == 6, "other weights are another cache key"


def test_damaged_cache_entry_is_recomputed(random_clip, tmp_path):
    clip, tokenizer = random_clip
    cache = EmbeddingCache(tmp_path)
    counter = CountingEncoder(clip, tokenizer)
    options = dict(clip_model=counter, tokenizer=counter.tokenize, pretrained="random-seed0", cache=cache)
    first = compute_text_embeddings(["Liver"], **options)
    (path,) = cache.directory.glob("*.pt")
    assert path.is_file()
    path.write_bytes(b"not a torch file")
    again = compute_text_embeddings(["Liver"], **options)
    assert counter.rows == 2 and torch.equal(first, again)
    assert cache.clear() == 1


def test_default_cache_lives_under_universalseg_home(monkeypatch, tmp_path):
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "embeddings"
    assert EmbeddingCache().directory == tmp_path / "embeddings"


def test_quick_gelu_follows_the_weights(tmp_path):
    assert resolve_quick_gelu("ViT-B-32", "openai") is True
    assert resolve_quick_gelu("ViT-B-32", "laion2b_s34b_b79k") is False
    assert resolve_quick_gelu("ViT-B-32", None) is False
    weights = tmp_path / "ViT-B-32.pt"
    weights.write_bytes(b"")
    assert resolve_quick_gelu("ViT-B-32", weights) is True


def test_local_weights_file(random_clip, tmp_path):
    clip, tokenizer = random_clip
    weights = tmp_path / "clip_vit_b32.pt"
    torch.save(clip.state_dict(), weights)
    model = create_clip_model("ViT-B-32", weights)
    assert any(isinstance(m, open_clip.transformer.QuickGELU) for m in model.modules()), (
        "OpenAI CLIP uses QuickGELU"
    )
    embeddings = compute_text_embeddings(NAMES, pretrained=weights, quick_gelu=False, cache=False)
    with torch.no_grad():
        expected = clip.encode_text(tokenizer([f"A computerized tomography of a {n}" for n in NAMES]))
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-5)


def test_missing_weights_give_a_clear_error(monkeypatch, tmp_path):
    with pytest.raises(ClipWeightsError, match="not found"):
        compute_text_embeddings(["Liver"], pretrained=tmp_path / "ViT-B-32.pt", cache=False)

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(ClipWeightsError) as info:
        compute_text_embeddings(["Liver"], cache=False)
    message = str(info.value)
    assert "pretrained='<path to weights file>'" in message and "network is unreachable" in message
