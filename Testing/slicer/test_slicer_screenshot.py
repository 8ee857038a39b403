"""scripts/make_screenshot.py renders the real panel widgets offscreen into a PNG."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "make_screenshot.py"


def load_script():
    spec = importlib.util.spec_from_file_location("make_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ui_file_loads_without_slicer_widgets():
    text = load_script().plain_qt_ui().decode("utf-8")
    assert "ctkCollapsibleButton" not in text and "qMRMLNodeComboBox" not in text
    assert 'class="QGroupBox"' in text and "<customwidgets>" not in text


def test_screenshot_shows_the_panel(qtbot, tmp_path):
    from Qt import QtGui

    output = load_script().render(tmp_path / "panel.png")
    image = QtGui.QImage(str(output))
    assert image.width() >= 440 and image.height() > 600
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colors) > 20  # real widgets, not a blank image
