"""scripts/make_screenshot.py renders the real panel, in the state before Segment is clicked, into a PNG.

Also checks that the module, its parameter node and the script offer the same choices
(``UniversalSegGui.choices``), and the estimate line's text builder.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from UniversalSegGui.choices import (  # noqa: E402
    DEFAULT_CLASSES,
    DEVICE_CHOICES,
    MODEL_CHOICES,
    SPEED_CHOICES,
    choice_values,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "make_screenshot.py"
MODULE_FILE = REPO_ROOT / "UniversalSeg" / "UniversalSeg.py"
CHOICES_OF_PARAMETER = {"model": MODEL_CHOICES, "device": DEVICE_CHOICES, "speedMode": SPEED_CHOICES}


def load_script():
    spec = importlib.util.spec_from_file_location("make_screenshot", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def combo_entries(combo) -> list[tuple[str, str]]:
    return [(combo.itemData(row), combo.itemText(row)) for row in range(combo.count())]


def parameter_node_choices() -> dict[str, tuple[list[str], object]]:
    """``Choice([...])`` values and default of each UniversalSegParameterNode field, read from the source."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    parameters = next(
        node
        for node in tree.body
        if isinstance(node, ast.ClassDef) and node.name == "UniversalSegParameterNode"
    )
    found = {}
    for field in parameters.body:
        if not isinstance(field, ast.AnnAssign):
            continue
        for call in ast.walk(field.annotation):
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "Choice":
                default = ast.literal_eval(field.value) if field.value is not None else None
                found[field.target.id] = (ast.literal_eval(call.args[0]), default)
    return found


def test_parameter_node_choices_match_the_shared_choices():
    found = parameter_node_choices()
    assert set(found) == set(CHOICES_OF_PARAMETER)
    for name, choices in CHOICES_OF_PARAMETER.items():
        values, default = found[name]
        assert values == choice_values(choices), name
        assert default == choices[0][0], f"{name}: the default is shown first"


def test_speed_choices_are_the_engine_speed_modes_and_models_are_in_the_catalog():
    from UniversalSegLib.inference.speed import DEFAULT_SPEED, SPEED_MODES
    from UniversalSegLib.weights.manager import WeightsManager

    assert tuple(choice_values(SPEED_CHOICES)) == SPEED_MODES and SPEED_CHOICES[0][0] == DEFAULT_SPEED
    catalog = WeightsManager(home="/nonexistent-universalseg-test").catalog
    assert set(choice_values(MODEL_CHOICES)) <= set(catalog.items)
    assert MODEL_CHOICES[0][0] == catalog.default_model


def test_module_takes_its_choices_from_the_shared_module():
    """UniversalSeg.py declares no choice lists of its own; setup() imports them from UniversalSegGui."""
    tree = ast.parse(MODULE_FILE.read_text(encoding="utf-8"))
    top_level = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert not top_level & {"DEVICE_CHOICES", "SPEED_CHOICES", "MODEL_CHOICES", "DEFAULT_CLASSES"}
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "UniversalSegGui.choices"
        for alias in node.names
    }
    assert {"DEVICE_CHOICES", "SPEED_CHOICES", "DEFAULT_CLASSES"} <= imported
    estimate_imports = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "UniversalSegGui.estimate_text"
    ]
    assert estimate_imports, "updateEstimate must use UniversalSegGui.estimate_text"


def test_ui_file_loads_without_slicer_widgets():
    script = load_script()
    text = script.plain_qt_ui().decode("utf-8")
    assert "ctkCollapsibleButton" not in text and "qMRMLNodeComboBox" not in text
    assert 'class="QGroupBox"' in text and "<customwidgets>" not in text
    assert script.none_display_texts() == {"outputSegmentationSelector": "Create new segmentation"}


def test_a_cache_folder_with_files_is_refused_and_kept(tmp_path):
    script = load_script()
    (tmp_path / "weights").mkdir()
    with pytest.raises(FileExistsError, match="not empty"), script.fresh_cache(tmp_path):
        pass
    assert (tmp_path / "weights").is_dir()


def test_geometry_falls_back_to_a_named_synthetic_one_without_shared(tmp_path):
    script = load_script()
    geometry = script.ct_geometry(shared=tmp_path / "no-shared")
    assert (
        geometry is script.SYNTHETIC_CT and "synthetic" in geometry.name.lower() and geometry.source is None
    )
    with pytest.raises(FileNotFoundError, match="--ct"):
        script.ct_geometry(tmp_path / "missing.nii.gz")


def test_screenshot_shows_the_idle_panel_for_a_real_ct(qtbot, tmp_path, ct_dir, monkeypatch):
    from Qt import QtGui, QtWidgets
    from UniversalSegGui.estimate_text import estimate_text

    ct_path = ct_dir / "totalseg_example" / "example_ct.nii.gz"
    script = load_script()
    rendered = script.render(tmp_path / "panel.png", ct_path, cache_home=tmp_path / "empty-cache")
    find = rendered.widget.findChild

    assert rendered.geometry.dimensions == (122, 101, 112) and rendered.geometry.spacing == (3.0, 3.0, 3.0)
    assert find(QtWidgets.QComboBox, "inputVolumeSelector").currentText() == "example_ct"
    assert combo_entries(find(QtWidgets.QComboBox, "deviceComboBox")) == list(DEVICE_CHOICES)
    assert combo_entries(find(QtWidgets.QComboBox, "speedComboBox")) == list(SPEED_CHOICES)
    assert combo_entries(rendered.weights_panel.modelCombo) == list(MODEL_CHOICES)
    assert find(QtWidgets.QComboBox, "deviceComboBox").currentIndex() == 0
    assert find(QtWidgets.QComboBox, "speedComboBox").currentIndex() == 0
    assert rendered.checklist.chosenKeys() and set(rendered.checklist.selectedKeys()) == set(DEFAULT_CLASSES)

    # The estimate is the module's text for this CT on a fresh CPU-only machine (no measured rates).
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path / "fresh-home"))
    label = find(QtWidgets.QLabel, "estimateLabel").text()
    assert label == estimate_text((122, 101, 112), (3.0, 3.0, 3.0), "swinunetr", "faithful", None)
    # 366 x 303 x 336 mm at 1.5 mm = 244 x 202 x 224 voxels: 5 x 4 x 4 windows of 96 with step 48.
    assert label.startswith("Estimated time on CPU: about ") and label.endswith("(80 windows).")

    # Idle, Segment enabled, and nothing of a run: no progress, no status, no log lines.
    run_panel = rendered.run_panel
    assert run_panel.segmentButton.text() == "Segment" and run_panel.segmentButton.isEnabled()
    assert run_panel.progressBar.isHidden() and run_panel.statusLabel.text() == ""
    assert run_panel.logEdit.toPlainText() == ""
    assert rendered.weights_panel.statusLabel.text().startswith("not downloaded yet")
    assert not (tmp_path / "empty-cache").exists()  # the temporary cache is removed
    assert rendered.weights_panel.downloadProgress.isHidden()

    image = QtGui.QImage(str(rendered.output))
    assert image.width() >= 440 and image.height() > 600
    colors = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colors) > 20  # real widgets, not a blank image


def test_estimate_text_for_cpu_and_gpu(monkeypatch, tmp_path):
    from UniversalSegGui.estimate_text import estimate_text
    from UniversalSegGui.progress_view import format_duration
    from UniversalSegGui.time_estimate import estimate_for_speed

    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path))
    estimate = estimate_for_speed((122, 101, 30), (3.0, 3.0, 3.0), "unet", "faithful", device="cpu")
    assert estimate_text((122, 101, 30), (3.0, 3.0, 3.0), "unet", "faithful") == (
        f"Estimated time on CPU: about {format_duration(estimate.seconds)} (20 windows)."
    )
    assert (
        estimate_text((1, 1, 1), (1, 1, 1), "unet", "fast", gpu=("Big GPU", 24 * 1024**3)) == "GPU: Big GPU"
    )
    small = estimate_text((1, 1, 1), (1, 1, 1), "unet", "fast", gpu=("Small GPU", 4 * 1024**3))
    assert small.startswith("Small GPU has 4.0 GB") and "'CPU'" in small
    german = {"GPU: {name}": "Grafikkarte: {name}"}
    translated = estimate_text((1, 1, 1), (1, 1, 1), "unet", "fast", ("Some GPU", None), german.get)
    assert translated == "Grafikkarte: Some GPU"
