"""Widgets and logic pieces of the UniversalSeg Slicer module.

Everything here runs both inside 3D Slicer (PythonQt ``qt`` module) and outside it (Qt.py with
PySide6) through :mod:`UniversalSegGui.qt_compat`, so it can be tested with pytest-qt.
"""
