"""Make the module's ``UniversalSegGui`` package and this folder's helpers importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "UniversalSeg"
for folder in (MODULE_DIR, HERE):  # UniversalSegGui, and the helpers of this folder
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture
def load_module_file(monkeypatch):
    """Returns a loader of ``UniversalSeg/UniversalSeg.py`` with the Slicer application modules stubbed."""
    import functools

    from slicer_module_file import load_module_file as load

    return functools.partial(load, set_module=functools.partial(monkeypatch.setitem, sys.modules))
