"""The weights panel with a real WeightsManager in a temporary cache: license, import, clear, folder."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from UniversalSegGui.weights_panel import MODELS, WeightsPanel  # noqa: E402

from UniversalSegLib.weights.entries import WeightsCatalog  # noqa: E402
from UniversalSegLib.weights.manager import WeightsManager  # noqa: E402


@pytest.fixture()
def manager(tmp_path):
    return WeightsManager(home=tmp_path / "cache")


def make_panel(qtbot, manager, **dialogs):
    panel = WeightsPanel(manager=manager, **dialogs)
    qtbot.addWidget(panel)
    return panel


def test_model_choice_defaults_to_swin_unetr(qtbot, manager):
    changes = []
    panel = make_panel(qtbot, manager)
    panel.model_changed.append(changes.append)
    assert panel.model() == "swinunetr" == MODELS[0][0]
    panel.setModel("unet")
    assert panel.model() == "unet" and changes == ["unet"]
    assert "not downloaded" in panel.statusLabel.text()
    with pytest.raises(ValueError, match="Unknown model"):
        panel.setModel("resnet")


def test_license_is_asked_once_and_remembered(qtbot, manager):
    asked = []
    panel = make_panel(qtbot, manager, ask_license=lambda notice: asked.append(notice) or False)
    assert not panel.ensureLicenseAccepted("swinunetr")
    assert "CC BY-NC-ND" in asked[0]
    panel.ask_license = lambda notice: asked.append(notice) or True
    assert panel.ensureLicenseAccepted("swinunetr")
    assert len(asked) == 2
    again = make_panel(
        qtbot, WeightsManager(home=manager.home), ask_license=lambda notice: asked.append(notice)
    )
    assert again.ensureLicenseAccepted("unet")  # same license, accepted before: no question
    assert len(asked) == 2


def data_catalog(size: int) -> WeightsCatalog:
    """The packaged model names, with ``unet`` a plain data file of ``size`` bytes (imported by size)."""
    return WeightsCatalog.from_dict(
        {
            "default_model": "swinunetr",
            "licenses": {
                "open": {"url": "https://example.org/o", "text": "Open.", "requires_acceptance": False}
            },
            "items": {
                name: {
                    "kind": "data",
                    "license": "open",
                    "file_name": f"{name}.pth",
                    "url": "http://x",
                    "size": size,
                }
                for name in ("swinunetr", "unet")
            },
        }
    )


def test_import_shows_the_measured_size_and_refuses_missing_files(qtbot, tmp_path):
    weights = tmp_path / "my_unet.pth"
    weights.write_bytes(b"\1" * 2500)
    manager = WeightsManager(home=tmp_path / "cache", catalog=data_catalog(2500))
    errors = []
    panel = make_panel(qtbot, manager, choose_file=lambda: str(weights), show_error=errors.append)
    panel.setModel("unet")
    assert panel.statusLabel.text() == "not downloaded yet: 2.5 kB to download on the first run"
    imported = panel.importWeights()
    assert imported == manager.path("unet") and imported.read_bytes() == weights.read_bytes()
    assert weights.is_file()  # copied, not moved
    assert panel.statusLabel.text() == f"downloaded, 2.5 kB ({imported})"
    assert panel.cacheLabel.text() == f"2.5 kB (weights 2.5 kB) in {manager.home}"

    assert panel.importWeights(str(tmp_path / "missing.pth")) is None
    assert errors and "missing.pth" in errors[0]


def test_a_file_that_is_not_the_model_is_refused_with_a_message(qtbot, manager, tmp_path):
    junk = tmp_path / "notes.pth"
    junk.write_text("not really a checkpoint", encoding="utf-8")
    errors = []
    panel = make_panel(qtbot, manager, show_error=errors.append)
    panel.setModel("unet")
    assert panel.importWeights(str(junk)) is None
    assert errors and "notes.pth" in errors[0] and not manager.is_available("unet")
    assert "not downloaded" in panel.statusLabel.text()


def test_open_and_clear_cover_weights_converted_models_and_speeds(qtbot, manager):
    home = manager.home
    files = {
        manager.path("unet"): 3000,
        home / "openvino" / "unet-96x96x96-k" / "encoder.bin": 6000,
        home / "openvino" / "unet-96x96x96-k" / "int8-v1" / "encoder.bin": 1000,
        home / "speed_probe.json": 20,
    }
    for path, size in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
    manager.accept_license("unet")
    questions, opened = [], []
    panel = make_panel(
        qtbot, manager, confirm=lambda text: questions.append(text) or False, open_folder=opened.append
    )
    panel.setModel("unet")
    assert panel.statusLabel.text() == f"downloaded, 3.0 kB ({manager.path('unet')})"
    assert panel.cacheLabel.text() == f"10 kB (weights 3.0 kB, converted models 7.0 kB, other 20 B) in {home}"

    assert panel.openCacheFolder() == home and opened == [home]  # the folder that holds all of them

    assert panel.clearCache() == [] and all(path.is_file() for path in files)
    assert questions[0].startswith(f"Delete everything cached in {home}: 10 kB (weights 3.0 kB")
    panel.confirm = lambda text: True
    assert set(panel.clearCache()) == {manager.path("unet"), home / "openvino", home / "speed_probe.json"}
    assert not any(path.exists() for path in files) and not (home / "openvino").exists()
    assert not manager.needs_license_acceptance("unet")  # the license acceptance is kept
    assert "not downloaded" in panel.statusLabel.text() and panel.cacheLabel.text() == f"empty in {home}"


def test_a_failed_clear_is_reported_not_raised(qtbot, manager, monkeypatch):
    def locked():
        raise PermissionError(13, "The file is in use", str(manager.home / "openvino" / "x.bin"))

    errors = []
    panel = make_panel(qtbot, manager, confirm=lambda text: True, show_error=errors.append)
    monkeypatch.setattr(manager, "clear_all", locked)
    assert panel.clearCache() == []
    assert "x.bin" in errors[0] and "try again" in errors[0]


def test_download_runs_in_the_background_with_progress(qtbot, tmp_path, monkeypatch):
    source = tmp_path / "served_unet.pth"
    source.write_bytes(b"\0" * 300_000)
    monkeypatch.setenv("UNIVERSALSEG_WEIGHTS_URL_UNET", source.as_uri())
    manager = WeightsManager()  # the cache of $UNIVERSALSEG_HOME, as the download process sees it
    finished = []
    panel = make_panel(qtbot, manager, ask_license=lambda notice: True)
    panel.download_finished.append(finished.append)
    panel.setModel("unet")
    assert panel.downloadWeights()
    assert panel.downloadButton.text() == "Cancel download"
    qtbot.waitUntil(lambda: bool(finished), timeout=60000)
    assert finished[0].succeeded, "\n".join(finished[0].log_tail)
    assert manager.path("unet").read_bytes() == source.read_bytes()
    assert panel.downloadButton.text() == "Download" and "not" not in panel.statusLabel.text()
