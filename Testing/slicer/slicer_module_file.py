"""Load ``UniversalSeg/UniversalSeg.py`` outside Slicer, with the few Slicer application modules stubbed.

slicer-core gives real MRML and ``slicer.util``, but not the pieces that only Slicer's application has
(``ScriptedLoadableModule``, ``parameterNodeWrapper``, ``slicer.i18n``, PythonQt's ``qt``). Plain stand-ins
for those let tests import the module file and drive its logic.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def slicer_application_stubs() -> dict[str, types.ModuleType]:
    """Module name -> stand-in for the Slicer application modules that slicer-core lacks."""
    from UniversalSegGui.qt_compat import qt

    class Base:
        def __init__(self, *args, **kwargs):
            pass

        def getParameterNode(self):
            return None

    scripted = types.ModuleType("slicer.ScriptedLoadableModule")
    for name in (
        "ScriptedLoadableModule",
        "ScriptedLoadableModuleWidget",
        "ScriptedLoadableModuleLogic",
        "ScriptedLoadableModuleTest",
    ):
        setattr(scripted, name, type(name, (Base,), {}))
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = lambda choices: ("Choice", tuple(choices))
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    i18n.translate = lambda context, text: text
    return {
        "slicer.ScriptedLoadableModule": scripted,
        "slicer.parameterNodeWrapper": wrapper,
        "slicer.i18n": i18n,
        "qt": qt,
    }


def load_module_file(
    repo: Path = REPO_ROOT, set_module: Callable[[str, types.ModuleType], None] | None = None
) -> types.ModuleType:
    """Import ``UniversalSeg.py`` after installing the stubs that are not already imported.

    Args:
        repo: the checkout's root.
        set_module: installs one stub (e.g. ``functools.partial(monkeypatch.setitem, sys.modules)``, so a
            test undoes it); ``sys.modules.__setitem__`` when ``None``.
    """
    set_module = set_module or sys.modules.__setitem__
    for name, stub in slicer_application_stubs().items():
        if name not in sys.modules:
            set_module(name, stub)
    spec = importlib.util.spec_from_file_location("UniversalSeg", repo / "UniversalSeg" / "UniversalSeg.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
