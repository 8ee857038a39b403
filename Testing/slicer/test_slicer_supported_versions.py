"""Supported Slicer versions are explicit: older Slicers load the module and get one clear line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MODULE_FILE = REPO_ROOT / "UniversalSeg" / "UniversalSeg.py"


def test_module_file_parses_with_the_python_of_slicer_5_8():
    """Slicer 5.8 (Python 3.9) must be able to load the file to show the message."""
    ast.parse(MODULE_FILE.read_text(encoding="utf-8"), feature_version=(3, 9))


def test_older_python_gets_one_line_naming_the_slicer_version(load_module_file):
    module = load_module_file()
    message = module.unsupportedSlicerMessage((3, 9, 10, "final", 0))
    assert "\n" not in message
    assert "3D Slicer 5.10 or later" in message and "Python 3.9" in message
    assert module.unsupportedSlicerMessage((3, 10, 0)) == ""
    assert module.unsupportedSlicerMessage((3, 12, 10, "final", 0)) == ""


def test_segment_refuses_on_an_unsupported_python_before_installing_anything(load_module_file, monkeypatch):
    module = load_module_file()
    monkeypatch.setattr(module, "unsupportedSlicerMessage", lambda: "UniversalSeg needs 3D Slicer 5.10")
    logic = module.UniversalSegLogic()
    installs: list[str] = []
    monkeypatch.setattr(logic, "ensureDependencies", lambda *args, **kwargs: installs.append("called"))
    with pytest.raises(RuntimeError, match="^UniversalSeg needs 3D Slicer 5.10$"):
        logic.segment(None, ["liver"])
    assert installs == []


def test_readme_names_the_same_minimum_slicer(load_module_file):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    minimum = load_module_file().MINIMUM_SLICER_VERSION
    assert re.search(rf"3D Slicer {re.escape(minimum)}\+", readme)
