"""The module panel's start-up path in a Python that has only what a stock 3D Slicer bundles.

Run by ``test_slicer_stock_python.py`` as ``python -S stock_slicer_startup.py SITE_PACKAGES REPO OUT``:
``-S`` leaves site-packages off ``sys.path``; an import finder then serves only the packages a stock
Slicer has (numpy, SimpleITK, vtk, slicer, and Qt through PySide6 + Qt.py standing in for PythonQt).
Everything else (torch, monai, platformdirs, openvino, ...) is absent, exactly as it would be:
``import torch`` raises ``ModuleNotFoundError`` and ``importlib.util.find_spec("torch")`` is ``None``.
The script builds the panel's widgets, drives them, and writes what it saw to ``OUT`` as JSON.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import json
import logging
import os
import sys
import types
from pathlib import Path

#: Top-level packages of a stock Slicer's Python that this environment also has.
STOCK_PACKAGES = frozenset(
    {"numpy", "SimpleITK", "vtk", "vtkmodules", "slicer", "slicer_core", "PySide6", "shiboken6", "Qt"}
)
#: Packages our code might look for that a stock Slicer lacks: looked-for ones are reported.
WATCHED_PACKAGES = frozenset(
    {
        "torch",
        "monai",
        "platformdirs",
        "openvino",
        "nncf",
        "tqdm",
        "scipy",
        "cc3d",
        "nrrd",
        "nibabel",
        "slicerio",
        "torchvision",
        "open_clip",
        "einops",
        "yaml",
        "packaging",
    }
)


class StockSlicerPackages(importlib.abc.MetaPathFinder):
    """Finds the stock packages in ``site_packages``; records every other third-party package asked for."""

    def __init__(self, site_packages: list[str]) -> None:
        self.site_packages = site_packages
        self.looked_for: list[str] = []

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if "." not in name and top in STOCK_PACKAGES:
            return importlib.machinery.PathFinder.find_spec(name, self.site_packages)
        if top in WATCHED_PACKAGES and top not in self.looked_for:
            self.looked_for.append(top)
        return None


def install_stock_environment(site_packages: list[str], repo: Path) -> StockSlicerPackages:
    """Restrict imports to the standard library, the stock packages and our own code."""
    sys.path[:] = [p for p in sys.path if p and "site-packages" not in p and "dist-packages" not in p]
    sys.path[:0] = [str(repo), str(repo / "UniversalSeg")]
    finder = StockSlicerPackages(site_packages)
    sys.meta_path.insert(0, finder)
    importlib.invalidate_caches()
    leaked = sorted(name for name in sys.modules if name.partition(".")[0] in WATCHED_PACKAGES)
    if leaked or importlib.util.find_spec("torch") is not None:
        raise SystemExit(f"the stock environment is not clean: {leaked or 'torch is importable'}")
    return finder


class Records(logging.Handler):
    """Keeps every log record at WARNING or above."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


def volume_node(scene, dimensions, spacing):
    """A scalar volume node with the geometry of a real CT (no voxels are allocated: none are read)."""
    import vtk

    image_data = vtk.vtkImageData()
    image_data.SetDimensions(*dimensions)
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "CT")
    node.SetAndObserveImageData(image_data)
    node.SetSpacing(*spacing)
    return node


def run_panel(repo: Path, dimensions, spacing) -> dict:
    """Build and drive the panel's widgets; return what they showed."""
    import slicer
    from Qt import QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    from slicer_module_file import load_module_file  # this folder is sys.path[0] of the script

    module = load_module_file(repo)
    from UniversalSegGui.class_checklist import ClassChecklist
    from UniversalSegGui.run_panel import RunController, RunPanel
    from UniversalSegGui.weights_panel import WeightsPanel

    from UniversalSegLib.inference.estimate import cache_path

    seen: dict = {"opened": [], "confirmations": []}
    logic = module.UniversalSegLogic()
    checklist = ClassChecklist()
    checklist.setSelectedKeys(["liver", "spleen"])
    weights = WeightsPanel(
        confirm=lambda text: seen["confirmations"].append(text) or True,
        open_folder=lambda folder: seen["opened"].append(str(folder)),
        show_error=lambda text: seen.setdefault("errors", []).append(text),
    )
    run = RunPanel()
    RunController(run, logic.job)
    seen["weights_status"] = {}
    for name in ("unet", "swinunetr"):
        weights.setModel(name)
        weights.refresh()
        seen["weights_status"][name] = weights.statusLabel.text()
    seen["cache_text"] = weights.cacheLabel.text()
    seen["license_needed"] = weights.manager.needs_license_acceptance("swinunetr")
    seen["home"] = str(weights.manager.home)
    seen["rates_file"] = str(cache_path())
    seen["open_folder_returned"] = str(weights.openCacheFolder())
    seen["cleared"] = [str(path) for path in weights.clearCache()]
    weights.setModel("unet")
    seen["weights_status_after_clear"] = weights.statusLabel.text()
    seen["cache_text_after_clear"] = weights.cacheLabel.text()
    seen["gpu"] = logic.gpuInfo()

    scene = slicer.vtkMRMLScene()
    volume = volume_node(scene, dimensions, spacing)
    label = QtWidgets.QLabel()
    seen["estimates"] = {}
    for model in ("swinunetr", "unet"):
        for speed in ("faithful", "balanced", "fast"):
            for device in ("auto", "cpu"):
                widget = types.SimpleNamespace(
                    _parameterNode=types.SimpleNamespace(
                        inputVolume=volume, model=model, speedMode=speed, device=device
                    ),
                    logic=logic,
                    ui=types.SimpleNamespace(estimateLabel=label),
                )
                module.UniversalSegWidget.updateEstimate(widget)
                seen["estimates"][f"{model}/{speed}/{device}"] = label.text()
    seen["checked_classes"] = checklist.selectedKeys()
    app.processEvents()
    return seen


def main() -> None:
    site_packages, repo, out = sys.argv[1].split(os.pathsep), Path(sys.argv[2]), Path(sys.argv[3])
    dimensions = [int(v) for v in sys.argv[4].split("x")]
    spacing = [float(v) for v in sys.argv[5].split("x")]
    finder = install_stock_environment(site_packages, repo)
    records = Records()
    logging.getLogger().addHandler(records)
    logging.getLogger().setLevel(logging.INFO)
    seen = run_panel(repo, dimensions, spacing)
    seen["log"] = records.lines
    seen["looked_for"] = finder.looked_for
    seen["loaded"] = sorted({name.partition(".")[0] for name in sys.modules} & WATCHED_PACKAGES)
    out.write_text(json.dumps(seen, indent=1), encoding="utf-8")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # PySide6 may crash while it destroys parentless widgets at interpreter exit


if __name__ == "__main__":
    main()
