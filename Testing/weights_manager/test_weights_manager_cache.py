"""WeightsManager cache operations: packaged catalog, import, clear, home folder."""

from __future__ import annotations

import hashlib
import logging

import pytest

from UniversalSegLib.weights.errors import UnknownWeightsError, WeightsError, WeightsNotFoundError
from UniversalSegLib.weights.manager import WeightsManager

DATA = b"weights bytes " * 1000


def test_packaged_catalog_has_official_urls_and_sample_ct(tmp_path):
    manager = WeightsManager(home=tmp_path)
    assert manager.default_model == "swinunetr"
    swin, unet, sample = manager.item("swinunetr"), manager.item("unet"), manager.item("sample_ct")
    assert swin.url == (
        "https://huggingface.co/ljwztc/CLIP-Driven-Universal-Model/resolve/main/"
        "clip_driven_universal_swin_unetr.pth?download=true"
    )
    assert unet.file_name == "clip_driven_universal_unet.pth" and unet.url.endswith("unet.pth?download=true")
    assert swin.license.id == unet.license.id == "CC BY-NC-ND 4.0" and swin.license.requires_acceptance
    assert sample.sha256 == "dbd3ae6d614d1d7ef3a46925c30c70038ed52da6b37fdd6afdc7b9b71387e3e1"
    assert not sample.license.requires_acceptance
    assert [item.name for item in manager.list()][:2] == ["swinunetr", "unet"]


def test_home_comes_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path / "env_home"))
    manager = WeightsManager()
    assert manager.path("unet") == tmp_path / "env_home" / "weights" / "clip_driven_universal_unet.pth"


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(UnknownWeightsError, match="swinunetr, unet"):
        WeightsManager(home=tmp_path).path("nope")


def test_import_verifies_checksum(tmp_path, catalog_factory):
    good = tmp_path / "good.pth"
    good.write_bytes(DATA)
    bad = tmp_path / "bad.pth"
    bad.write_bytes(DATA + b"x")
    sha256 = hashlib.sha256(DATA).hexdigest()
    # A data item: only the checksum decides (model items must also load, see Testing/cli).
    catalog = catalog_factory(
        {"m": {"kind": "data", "file_name": "m.pth", "url": "http://x/m", "sha256": sha256}}
    )
    manager = WeightsManager(home=tmp_path / "home", catalog=catalog)

    with pytest.raises(WeightsError, match="sha256"):
        manager.import_file("m", bad)
    assert not manager.is_available("m")

    path = manager.import_file("m", good)
    assert path.read_bytes() == DATA and good.exists()
    assert manager.get_weights_path("m", download=False) == path


def test_import_without_checksum_warns(tmp_path, catalog_factory, caplog):
    source = tmp_path / "any.pth"
    source.write_bytes(DATA)
    catalog = catalog_factory({"m": {"kind": "data", "file_name": "m.pth", "url": "http://x/m.pth"}})
    with caplog.at_level(logging.WARNING):
        WeightsManager(home=tmp_path / "home", catalog=catalog).import_file("m", source)
    assert "could not be verified" in caplog.text


def test_missing_file_without_download_says_how_to_get_it(tmp_path):
    with pytest.raises(
        WeightsNotFoundError, match="universalseg weights import clip_driven_universal_unet.pth"
    ):
        WeightsManager(home=tmp_path).get_weights_path("unet", download=False)


def test_clear_one_and_all(tmp_path, catalog_factory):
    catalog = catalog_factory(
        {"a": {"file_name": "a.pth", "url": "http://x/a"}, "b": {"file_name": "b.pth", "url": "http://x/b"}}
    )
    manager = WeightsManager(home=tmp_path / "home", catalog=catalog)
    manager.cache_dir.mkdir(parents=True)
    manager.path("a").write_bytes(DATA)
    manager.path("b").write_bytes(DATA)
    manager.path("b").with_name("b.pth.part").write_bytes(b"partial")
    manager.accept_license("a")

    assert manager.clear("a") == [manager.path("a")]
    assert not manager.is_available("a") and manager.is_available("b")
    removed = manager.clear()
    assert set(removed) == {manager.path("b"), manager.path("b").with_name("b.pth.part")}
    assert list(manager.cache_dir.iterdir()) == []
