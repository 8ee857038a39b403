"""One cache folder for everything: where it is (without platformdirs), what it holds, clearing it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from UniversalSegLib import cache_paths
from UniversalSegLib.cli.main import main
from UniversalSegLib.inference import estimate
from UniversalSegLib.weights.cache_usage import CacheUsage, format_size, path_size
from UniversalSegLib.weights.manager import WeightsManager

ENGINE_FILES = {  # what a balanced and a fast run leave in <home>/openvino, scaled down
    "openvino/swinunetr-96x96x96-abc/encoder.xml": 300,
    "openvino/swinunetr-96x96x96-abc/encoder.bin": 7000,
    "openvino/swinunetr-96x96x96-abc/int8-v1/encoder.bin": 2000,
    "openvino/swinunetr-96x96x96-abc/compiled/blob": 1000,
}


def fill(home: Path, files: dict[str, int]) -> None:
    for relative, size in files.items():
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)


def fill_cache(manager: WeightsManager) -> None:
    """Weights, a partial download, converted models, measured speeds, embeddings and a license."""
    fill(manager.home, ENGINE_FILES)
    fill(manager.home, {"weights/clip_driven_universal_unet.pth": 4000, "embeddings/e.pt": 10})
    manager.path("swinunetr").with_name(manager.path("swinunetr").name + ".part").write_bytes(b"\0" * 500)
    rates = {"swinunetr|cpu|fp32|b1|host|2": {"seconds_per_window": 8.0, "source": "last run"}}
    (manager.home / "speed_probe.json").write_text(json.dumps(rates), encoding="utf-8")
    manager.accept_license("swinunetr")


@pytest.fixture
def no_home_override(monkeypatch, tmp_path):
    """The default per-user folders, moved into ``tmp_path`` through the XDG variables."""
    monkeypatch.delenv(cache_paths.HOME_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


@pytest.mark.parametrize("xdg", ["absolute", "relative", "empty", "unset"])
def test_user_folders_are_platformdirs_folders(monkeypatch, tmp_path, xdg):
    platformdirs = pytest.importorskip("platformdirs")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    value = {"absolute": str(tmp_path / "xdg"), "relative": "relative/xdg", "empty": "", "unset": None}[xdg]
    for variable in ("XDG_DATA_HOME", "XDG_CACHE_HOME"):
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)
    assert cache_paths.user_data_folder() == Path(platformdirs.user_data_dir("UniversalSeg", appauthor=False))
    assert cache_paths.legacy_cache_folder() == Path(
        platformdirs.user_cache_dir("UniversalSeg", appauthor=False)
    )


def test_every_cache_lives_in_the_one_home(no_home_override):
    home = no_home_override / "data" / "UniversalSeg"
    assert cache_paths.home_folder() == home == WeightsManager().home
    assert WeightsManager().cache_dir == home / "weights"
    assert estimate.cache_path() == home / "speed_probe.json"
    openvino_encoder = pytest.importorskip("UniversalSegLib.inference.engines.openvino_encoder")
    assert openvino_encoder.default_cache_dir() == home / "openvino"


def test_home_override_moves_every_cache(monkeypatch, tmp_path):
    monkeypatch.setenv(cache_paths.HOME_ENV, str(tmp_path / "elsewhere"))
    assert WeightsManager().home == tmp_path / "elsewhere" == cache_paths.home_folder()
    assert estimate.cache_path() == tmp_path / "elsewhere" / "speed_probe.json"


def test_usage_is_measured_on_disk(tmp_path):
    manager = WeightsManager(home=tmp_path / "home")
    assert manager.usage() == CacheUsage() and manager.usage().describe() == "empty"
    fill_cache(manager)
    usage = manager.usage()
    assert usage.weights == 4000 + 500
    assert usage.converted_models == sum(ENGINE_FILES.values())
    rates = (manager.home / "speed_probe.json").stat().st_size
    assert usage.other == 10 + rates
    assert usage.total == path_size(manager.home) - (manager.home / "license_accepted.json").stat().st_size
    assert usage.describe().startswith(f"{format_size(usage.total)} (weights 4.5 kB, converted models 10 kB")


def test_clear_all_removes_weights_engines_and_rates_but_keeps_the_license(tmp_path):
    manager = WeightsManager(home=tmp_path / "home")
    fill_cache(manager)
    removed = manager.clear_all()
    home = manager.home
    assert set(removed) == {
        home / "weights" / "clip_driven_universal_unet.pth",
        home / "weights" / "clip_driven_universal_swin_unetr.pth.part",
        home / "openvino",
        home / "embeddings",
        home / "speed_probe.json",
    }
    assert sorted(path.name for path in home.rglob("*")) == ["license_accepted.json", "weights"]
    assert not manager.needs_license_acceptance("swinunetr")
    assert manager.usage().total == 0 and manager.clear_all() == []


def test_clear_one_name_keeps_the_engines(tmp_path):
    manager = WeightsManager(home=tmp_path / "home")
    fill_cache(manager)
    assert manager.clear("unet") == [manager.path("unet")]
    assert (manager.home / "openvino").is_dir() and (manager.home / "speed_probe.json").is_file()


def test_clear_all_also_removes_what_earlier_versions_cached_elsewhere(no_home_override):
    legacy = no_home_override / "cache" / "UniversalSeg"
    fill(legacy, {"openvino/unet-96x96x96-x/encoder.bin": 800, "speed_probe.json": 20})
    manager = WeightsManager()
    assert manager.usage().converted_models == 800 and manager.usage().other == 20
    assert set(manager.clear_all()) == {legacy / "openvino", legacy / "speed_probe.json"}
    assert not legacy.exists()  # emptied, so removed
    fill(legacy, {"speed_probe.json": 20, "someone_elses.txt": 1})
    manager.clear_all()
    assert sorted(os.listdir(legacy)) == ["someone_elses.txt"]
    # With an explicit home, folders outside it are never touched.
    fill(legacy, {"speed_probe.json": 20})
    assert WeightsManager(home=no_home_override / "other").clear_all() == []
    assert (legacy / "speed_probe.json").is_file()


def test_cli_clear_all_and_clear_name(capsys):
    manager = WeightsManager()  # the $UNIVERSALSEG_HOME of the tests
    fill_cache(manager)
    assert main(["weights", "clear", "unet"]) == 0
    assert capsys.readouterr().out.strip() == f"deleted {manager.path('unet')}"
    assert (manager.home / "openvino").is_dir()
    assert main(["weights", "clear", "--all"]) == 0
    out = capsys.readouterr().out
    assert (
        f"deleted {manager.home / 'openvino'}" in out
        and f"deleted {manager.home / 'speed_probe.json'}" in out
    )
    assert out.strip().endswith(f"in {manager.home}") and "freed 1" in out
    assert (
        not (manager.home / "openvino").exists()
        and not manager.path("swinunetr").with_suffix(".part").exists()
    )
    assert json.loads((manager.home / "license_accepted.json").read_text(encoding="utf-8"))
    assert main(["weights", "clear", "--all"]) == 0
    assert "nothing to delete" in capsys.readouterr().err
    assert main(["weights", "clear", "unet", "--all"]) == 2


def test_format_size():
    assert [format_size(n) for n in (0, 999, 1000, 12_345, 245_000_000, 764_000_000, 1_234_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "12 kB",
        "245 MB",
        "764 MB",
        "1.2 GB",
    ]
