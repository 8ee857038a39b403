"""The weights panel with a real WeightsManager in a temporary cache: license, import, clear, folder."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from UniversalSegGui.weights_panel import MODELS, WeightsPanel  # noqa: E402

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


def test_import_clear_and_open_folder(qtbot, manager, tmp_path):
    weights = tmp_path / "my_unet.pth"
    weights.write_bytes(b"not really a checkpoint")
    errors, opened = [], []
    panel = make_panel(
        qtbot,
        manager,
        choose_file=lambda: str(weights),
        confirm=lambda text: True,
        show_error=errors.append,
        open_folder=opened.append,
    )
    panel.setModel("unet")
    imported = panel.importWeights()
    assert imported == manager.path("unet") and imported.read_bytes() == weights.read_bytes()
    assert weights.is_file()  # copied, not moved
    assert "downloaded" in panel.statusLabel.text() and "not" not in panel.statusLabel.text()

    assert panel.importWeights(str(tmp_path / "missing.pth")) is None
    assert errors and "missing.pth" in errors[0]

    assert panel.openCacheFolder() == manager.cache_dir and opened == [manager.cache_dir]

    panel.confirm = lambda text: False
    assert panel.clearCache() == [] and imported.is_file()
    panel.confirm = lambda text: True
    assert panel.clearCache() == [imported] and not imported.exists()
    assert "not downloaded" in panel.statusLabel.text()


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
