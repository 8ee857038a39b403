"""Render the module panel, as a user sees it before clicking Segment, to the README's screenshot.

::

    QT_QPA_PLATFORM=offscreen python scripts/make_screenshot.py [OUTPUT.png] [--ct CT_FILE]

What is the module's own: the panel's ``.ui`` file; the class checklist, weights panel and run panel
(``UniversalSegGui`` widgets, with an idle ``SegmentationJob``); the model, device and speed entries
(``UniversalSegGui.choices``, which ``UniversalSegWidget.setup()`` adds); the classes ticked on first use;
the estimate line, made by ``UniversalSegGui.estimate_text.estimate_text`` (what ``updateEstimate`` shows)
for the geometry of a real CT (default: ``../shared/data/ct/totalseg_example/example_ct.nii.gz``, read,
never copied). The weights rows and the time estimate read an empty temporary cache
(``<tmp>/universalseg-empty-cache``, removed afterwards), as on a fresh machine: the weights are "not
downloaded yet" and the rate is the static table's. The depicted machine has no GPU, so device "Auto"
runs on the CPU and the estimate is the CPU line. No run, progress or log line is shown.

What is replaced: Slicer/CTK widgets cannot be created outside Slicer, so ``ctkCollapsibleButton`` becomes a
``QGroupBox`` with the same title, ``qMRMLNodeComboBox`` a ``QComboBox`` showing the CT's node name (input)
or the ``.ui`` file's ``noneDisplay`` text (output), and ``qMRMLWidget`` a ``QWidget``. The style is Qt's
default, not Slicer's. Slicer's ``_()`` translation is the identity (English).
Without ``../shared`` (and no ``--ct``), the input is a synthetic geometry named as such.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
UI_PATH = REPO_ROOT / "UniversalSeg" / "Resources" / "UI" / "UniversalSeg.ui"
DEFAULT_OUTPUT = REPO_ROOT / "Resources" / "Screenshots" / "universalseg_panel.png"
#: The real CT whose geometry the panel shows (relative to ``../shared``; see data/ct/README.md there).
DEFAULT_CT = Path("data") / "ct" / "totalseg_example" / "example_ct.nii.gz"
PANEL_WIDTH = 440
#: File suffixes Slicer strips from a file name to name the loaded node.
NODE_NAME_SUFFIXES = (".nii.gz", ".nii", ".seg.nrrd", ".nrrd", ".nhdr", ".mha", ".mhd")
#: The empty cache the panel reads (shown in its Cache row, so a fixed name keeps the PNG reproducible).
EMPTY_CACHE = Path(tempfile.gettempdir()) / "universalseg-empty-cache"


@dataclass(frozen=True)
class CtGeometry:
    """What the panel knows about the input volume: its node name, voxels and spacing (x, y, z)."""

    name: str
    dimensions: tuple[int, int, int]
    spacing: tuple[float, float, float]
    source: Path | None = None


#: Used only when ``../shared`` is missing: the size of the default CT, clearly labelled as made up.
SYNTHETIC_CT = CtGeometry("Synthetic CT geometry (../shared not found)", (122, 101, 112), (3.0, 3.0, 3.0))


@dataclass
class RenderedPanel:
    """The rendered widgets (kept alive so tests can inspect exactly what was drawn) and the PNG."""

    widget: Any
    checklist: Any
    weights_panel: Any
    run_panel: Any
    controller: Any
    geometry: CtGeometry
    output: Path | None = None


def shared_dir() -> Path:
    """``$UNIVERSALSEG_SHARED`` or the ``shared`` folder beside the checkout (as the tests use)."""
    return Path(os.environ.get("UNIVERSALSEG_SHARED", REPO_ROOT.parent / "shared"))


def node_name(path: Path) -> str:
    """The name Slicer gives a volume loaded from ``path`` (file name without its extension)."""
    name = path.name
    for suffix in NODE_NAME_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read_geometry(path: Path) -> CtGeometry:
    """Voxels and spacing of a CT file, from its header only."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    dimensions = tuple(int(size) for size in reader.GetSize())
    spacing = tuple(float(space) for space in reader.GetSpacing())
    return CtGeometry(node_name(path), dimensions, spacing, path)  # type: ignore[arg-type]


def ct_geometry(ct_path: Path | None = None, shared: Path | None = None) -> CtGeometry:
    """The geometry of ``ct_path``, else of the default shared CT, else :data:`SYNTHETIC_CT`.

    Raises:
        FileNotFoundError: ``ct_path`` was given and does not exist.
    """
    if ct_path is not None:
        if not ct_path.is_file():
            raise FileNotFoundError(f"No CT file at {ct_path}; pass an existing NIfTI/NRRD file with --ct.")
        return read_geometry(ct_path)
    default = (shared_dir() if shared is None else shared) / DEFAULT_CT
    return read_geometry(default) if default.is_file() else SYNTHETIC_CT


def _ui_tree(ui_path: Path) -> ET.ElementTree:
    return ET.parse(ui_path)


def none_display_texts(ui_path: Path = UI_PATH) -> dict[str, str]:
    """``noneDisplay`` of each node selector in the .ui file (what it shows when no node is chosen)."""
    texts = {}
    for widget in _ui_tree(ui_path).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if widget.get("class") == "qMRMLNodeComboBox" and prop.get("name") == "noneDisplay":
                texts[widget.get("name", "")] = prop.findtext("string", "")
    return texts


def plain_qt_ui(ui_path: Path = UI_PATH) -> bytes:
    """The .ui file with Slicer/CTK widgets replaced by plain Qt widgets."""
    tree = _ui_tree(ui_path)
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


@contextmanager
def fresh_cache(home: Path | None = None) -> Iterator[Path]:
    """``home`` (default :data:`EMPTY_CACHE`), empty, as ``$UNIVERSALSEG_HOME``; removed afterwards.

    Raises:
        FileExistsError: ``home`` exists and is not empty (it is never cleared).
    """
    from UniversalSegLib.cache_paths import HOME_ENV

    home = EMPTY_CACHE if home is None else home
    if home.exists() and any(home.iterdir()):
        raise FileExistsError(f"{home} is not empty; delete it (or pass another folder) and run again.")
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(HOME_ENV)
    os.environ[HOME_ENV] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop(HOME_ENV, None)
        else:
            os.environ[HOME_ENV] = previous
        shutil.rmtree(home, ignore_errors=True)


def _load_ui() -> Any:
    from PySide6.QtCore import QBuffer, QByteArray
    from PySide6.QtUiTools import QUiLoader

    buffer = QBuffer()
    buffer.setData(QByteArray(plain_qt_ui()))
    buffer.open(QBuffer.ReadOnly)
    return QUiLoader().load(buffer)


def _add_choices(combo: Any, choices: Sequence[tuple[str, str]], translate: Any) -> None:
    for value, label in choices:  # as UniversalSegWidget.setup()
        combo.addItem(translate(label), value)


def build_panel(geometry: CtGeometry, cache_home: Path, translate: Any = str) -> RenderedPanel:
    """The panel in the state the module shows before Segment is clicked, on a fresh CPU-only machine."""
    sys.path.insert(0, str(REPO_ROOT / "UniversalSeg"))
    from UniversalSegGui.choices import DEFAULT_CLASSES, DEVICE_CHOICES, SPEED_CHOICES
    from UniversalSegGui.class_checklist import ClassChecklist
    from UniversalSegGui.estimate_text import estimate_text
    from UniversalSegGui.qt_compat import qt
    from UniversalSegGui.run_panel import RunController, RunPanel
    from UniversalSegGui.segmentation_job import SegmentationJob
    from UniversalSegGui.weights_panel import WeightsPanel

    from UniversalSegLib.weights.manager import WeightsManager

    panel = _load_ui()
    find = panel.findChild
    find(qt.QComboBox, "inputVolumeSelector").addItem(geometry.name)
    for name, text in none_display_texts().items():
        if name != "inputVolumeSelector":
            find(qt.QComboBox, name).addItem(translate(text))

    checklist = ClassChecklist(translate=translate)
    checklist.setSelectedKeys(list(DEFAULT_CLASSES))
    find(qt.QVBoxLayout, "classChecklistLayout").addWidget(checklist)
    weights_panel = WeightsPanel(manager=WeightsManager(home=cache_home), translate=translate)
    find(qt.QVBoxLayout, "weightsPanelLayout").addWidget(weights_panel)
    device_combo = find(qt.QComboBox, "deviceComboBox")
    speed_combo = find(qt.QComboBox, "speedComboBox")
    _add_choices(device_combo, DEVICE_CHOICES, translate)
    _add_choices(speed_combo, SPEED_CHOICES, translate)

    run_panel = RunPanel(translate=translate)
    find(qt.QVBoxLayout, "runPanelLayout").addWidget(run_panel)
    controller = RunController(run_panel, SegmentationJob(), translate=translate)
    controller.setInputsReady(bool(checklist.selectedKeys()))  # an input volume is chosen
    gpu = None  # the depicted machine has no GPU, so the default device "auto" runs on the CPU
    find(qt.QLabel, "estimateLabel").setText(
        estimate_text(
            geometry.dimensions,
            geometry.spacing,
            weights_panel.model(),
            str(speed_combo.itemData(speed_combo.currentIndex())),
            gpu,
            translate=translate,
        )
    )
    return RenderedPanel(panel, checklist, weights_panel, run_panel, controller, geometry)


def _save_png(widget: Any, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".screenshot-", suffix=".png", dir=output.parent)
    os.close(fd)
    try:
        if not widget.grab().save(tmp, "PNG"):
            raise OSError(f"Could not write {output}; check that its folder is writable.")
        os.replace(tmp, output)
    finally:
        Path(tmp).unlink(missing_ok=True)


def render(
    output: Path = DEFAULT_OUTPUT, ct_path: Path | None = None, cache_home: Path | None = None
) -> RenderedPanel:
    """Build the panel for ``ct_path`` (default: the shared CT) and save it as a PNG at ``output``.

    Args:
        output: the PNG to write (atomically).
        ct_path: CT whose name and geometry are shown; see :func:`ct_geometry`.
        cache_home: an empty or missing folder used as the cache (default :data:`EMPTY_CACHE`).
    """
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    geometry = ct_geometry(ct_path)
    with fresh_cache(cache_home) as home:
        rendered = build_panel(geometry, home)
        panel = rendered.widget
        panel.resize(PANEL_WIDTH, panel.sizeHint().height())
        panel.show()
        app.processEvents()
        panel.resize(PANEL_WIDTH, max(panel.sizeHint().height(), panel.minimumSizeHint().height()))
        app.processEvents()
        _save_png(panel, output)
        panel.hide()
    rendered.output = output
    return rendered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT, help="PNG to write")
    parser.add_argument(
        "--ct", type=Path, help=f"CT whose geometry is shown (default: ../shared/{DEFAULT_CT})"
    )
    arguments = parser.parse_args(argv)
    rendered = render(arguments.output, arguments.ct)
    print(f"{rendered.output} (input: {rendered.geometry.source or rendered.geometry.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
