"""The shipped official embeddings and their agreement with the catalog and the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from UniversalSegLib.catalog import CLASSES, official_class_names
from UniversalSegLib.text import load_official_embeddings


@pytest.fixture(scope="module")
def official_path(shared_dir):
    return shared_dir / "data" / "txt_encoding.pth"


def test_official_embeddings_load_as_float32_one_row_per_class(official_path):
    embeddings = load_official_embeddings(official_path)
    assert embeddings.dtype == torch.float32 and embeddings.device.type == "cpu"
    assert embeddings.shape == (len(CLASSES), 512)
    assert torch.isfinite(embeddings).all()
    norms = embeddings.norm(dim=1)
    assert (norms > 1.5).all(), "official CLIP embeddings are not L2-normalised"
    assert len(torch.unique(embeddings, dim=0)) == len(CLASSES)
    raw = torch.load(official_path, map_location="cpu", weights_only=True)
    assert raw.dtype == torch.float16
    assert torch.equal(embeddings, raw.float())


def test_npy_copy_matches(official_path):
    npy = official_path.with_name("txt_encoding_fp16.npy")
    assert torch.equal(load_official_embeddings(npy), load_official_embeddings(official_path))
    assert np.load(npy).dtype == np.float16


def test_bad_embedding_files_are_rejected(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_official_embeddings(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save(torch.zeros(3, 7), bad)
    with pytest.raises(ValueError, match="512"):
        load_official_embeddings(bad)


def test_catalog_names_equal_model_class_names():
    from UniversalSegLib.model import OFFICIAL_CLASS_NAMES, UniversalModel

    assert list(OFFICIAL_CLASS_NAMES) == official_class_names()
    model = UniversalModel("unet")
    assert model.class_names == official_class_names()
    assert model.organ_embedding.shape == (len(CLASSES), 512)
