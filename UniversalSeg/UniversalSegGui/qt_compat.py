"""One flat ``qt`` namespace for Slicer's PythonQt and for PySide6 (through Qt.py).

Inside 3D Slicer, ``import qt`` gives PythonQt's flat module (``qt.QWidget``, ``qt.Qt.Checked``).
Outside Slicer the same names are gathered from Qt.py's ``QtCore``, ``QtGui`` and ``QtWidgets``.
Widget code uses only what both provide: ``signal.connect(callable)``, old-style enum names
(``qt.Qt.Checked``) and Python callbacks instead of custom Qt signals (PythonQt cannot declare them).
"""

from __future__ import annotations

import types
from typing import Any


def _load_qt() -> tuple[Any, str]:
    try:
        import qt as slicer_qt  # PythonQt, only inside 3D Slicer

        return slicer_qt, "PythonQt"
    except ImportError:
        pass
    try:
        from Qt import QtCore, QtGui, QtWidgets
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "UniversalSegGui needs Qt: run it inside 3D Slicer, or install Qt.py and PySide6 "
            "(pip install 'universalseg[gui]')."
        ) from error
    namespace = types.SimpleNamespace()
    for module in (QtCore, QtGui, QtWidgets):
        for name in dir(module):
            if name.startswith("Q") and not hasattr(namespace, name):
                setattr(namespace, name, getattr(module, name))
    return namespace, "PySide6"


qt, BINDING = _load_qt()
IS_SLICER = BINDING == "PythonQt"


def byte_array_to_text(data: Any) -> str:
    """Decode a ``QByteArray`` (either binding) as UTF-8, replacing undecodable bytes."""
    raw = data.data() if hasattr(data, "data") else data
    if isinstance(raw, str):
        return raw
    return bytes(raw).decode("utf-8", errors="replace")


def check_state_is_checked(state: Any) -> bool:
    """Whether a check state (enum in PySide6, int in PythonQt) means checked."""
    return state == qt.Qt.Checked or state == 2


def process_is_running(process: Any) -> bool:
    """Whether a ``QProcess`` is starting or running."""
    return process.state() != qt.QProcess.NotRunning


def prop(widget: Any, name: str) -> Any:
    """Read a Qt property: PythonQt exposes ``widget.text``, PySide6 ``widget.text()``."""
    value = getattr(widget, name)
    return value() if callable(value) else value
