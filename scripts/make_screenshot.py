"""Render the module panel offscreen to ``Resources/Screenshots/universalseg_panel.png``.

Loads ``UniversalSeg/Resources/UI/UniversalSeg.ui`` with PySide6's ``QUiLoader`` after swapping the
Slicer-only widgets for plain Qt ones (ctkCollapsibleButton -> QGroupBox, qMRMLNodeComboBox ->
QComboBox, qMRMLWidget -> QWidget), then inserts the real class checklist, weights panel and run
panel, as the module does in Slicer::

    QT_QPA_PLATFORM=offscreen python scripts/make_screenshot.py [OUTPUT.png]
"""

from __future__ import annotations

import os
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
UI_PATH = REPO_ROOT / "UniversalSeg" / "Resources" / "UI" / "UniversalSeg.ui"
DEFAULT_OUTPUT = REPO_ROOT / "Resources" / "Screenshots" / "universalseg_panel.png"
PANEL_WIDTH = 440
#: Placeholder text shown in the node selectors.
SELECTOR_TEXT = {"inputVolumeSelector": "CT abdomen", "outputSegmentationSelector": "Create new segmentation"}


def plain_qt_ui(ui_path: Path = UI_PATH) -> bytes:
    """The .ui file with Slicer/CTK widgets replaced by plain Qt widgets."""
    tree = ET.parse(ui_path)
    root = tree.getroot()
    for widget in root.iter("widget"):
        cls = widget.get("class")
        if cls == "qMRMLWidget":
            widget.set("class", "QWidget")
        elif cls == "ctkCollapsibleButton":
            widget.set("class", "QGroupBox")
            for prop in widget.findall("property"):
                if prop.get("name") == "text":
                    prop.set("name", "title")
        elif cls == "qMRMLNodeComboBox":
            widget.set("class", "QComboBox")
            for prop in list(widget.findall("property")):
                if prop.get("name") not in ("toolTip",):
                    widget.remove(prop)
    for tag in ("customwidgets", "connections"):
        for element in root.findall(tag):
            root.remove(element)
    return ET.tostring(root, encoding="utf-8")


def build_panel():
    """The panel widget with the real UniversalSegGui widgets inside."""
    sys.path.insert(0, str(REPO_ROOT / "UniversalSeg"))
    from PySide6.QtCore import QBuffer, QByteArray
    from PySide6.QtUiTools import QUiLoader
    from UniversalSegGui.class_checklist import ClassChecklist
    from UniversalSegGui.progress_view import format_duration
    from UniversalSegGui.qt_compat import qt
    from UniversalSegGui.run_panel import RunController, RunPanel
    from UniversalSegGui.run_state import RunState
    from UniversalSegGui.time_estimate import estimate_seconds
    from UniversalSegGui.weights_panel import WeightsPanel

    from UniversalSegLib.progress import ProgressEvent
    from UniversalSegLib.weights.manager import WeightsManager

    buffer = QBuffer()
    buffer.setData(QByteArray(plain_qt_ui()))
    buffer.open(QBuffer.ReadOnly)
    panel = QUiLoader().load(buffer)
    find = panel.findChild

    for name, text in SELECTOR_TEXT.items():
        find(qt.QComboBox, name).addItem(text)
    checklist = ClassChecklist()
    checklist.setSelectedKeys(
        ["spleen", "kidney_right", "kidney_left", "pancreas", "liver_tumor", "kidney_tumor"]
    )
    for title in ("Vessels", "Lungs", "Bones"):
        checklist.tree.collapseItem(checklist._group_items[title])
    checklist.tree.setMinimumHeight(450)
    find(qt.QVBoxLayout, "classChecklistLayout").addWidget(checklist)

    home = Path(tempfile.mkdtemp(prefix="universalseg-screenshot-"))
    find(qt.QVBoxLayout, "weightsPanelLayout").addWidget(WeightsPanel(manager=WeightsManager(home=home)))
    find(qt.QComboBox, "deviceComboBox").addItems(["Auto (GPU if available)", "CPU"])
    find(qt.QComboBox, "deviceComboBox").setCurrentIndex(1)
    find(qt.QComboBox, "speedComboBox").addItems(["Faithful (official settings)", "Fast"])
    estimate = estimate_seconds((122, 101, 112), (3.0, 3.0, 3.0), "swinunetr")
    find(qt.QLabel, "estimateLabel").setText(
        f"Estimated time on CPU: about {format_duration(estimate.seconds)} ({estimate.windows} windows)."
    )

    run_panel = RunPanel()
    controller = RunController(run_panel, _IdleJob())
    controller.setInputsReady(True)
    controller.state.go(RunState.RUNNING)
    run_panel.showProgress(ProgressEvent("inference", 7, 18, 41.0, 64.0))
    run_panel.appendLog("Loaded clip_driven_universal_swin_unetr.pth (Swin UNETR) on cpu")
    run_panel.appendLog("Input 122 x 101 x 112 voxels, 3.0 mm -> 1.5 mm grid")
    find(qt.QVBoxLayout, "runPanelLayout").addWidget(run_panel)
    return panel, controller


class _IdleJob:
    """A job that never runs (the screenshot only shows a state)."""

    def __init__(self) -> None:
        self.progress_callbacks, self.log_callbacks, self.finished_callbacks = [], [], []

    def start(self, *args, **kwargs) -> None:
        pass

    def cancel(self) -> None:
        pass


def render(output: Path = DEFAULT_OUTPUT) -> Path:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    panel, _controller = build_panel()
    panel.resize(PANEL_WIDTH, panel.sizeHint().height())
    panel.show()
    app.processEvents()
    panel.resize(PANEL_WIDTH, max(panel.sizeHint().height(), panel.minimumSizeHint().height()))
    app.processEvents()
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".screenshot-", suffix=".png", dir=output.parent)
    os.close(fd)
    try:
        if not panel.grab().save(tmp, "PNG"):
            raise OSError(f"Could not write {output}")
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)
    panel.close()
    return output


if __name__ == "__main__":
    print(render(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUTPUT))
