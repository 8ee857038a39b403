"""Draw the module/extension icon (128x128 PNG) with Qt: coloured organ shapes on a CT-like disc.

QT_QPA_PLATFORM=offscreen python scripts/make_icon.py
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
ICON_PATH = REPO_ROOT / "UniversalSeg" / "Resources" / "Icons" / "UniversalSeg.png"
SIZE = 128


def draw_icon(path: Path = ICON_PATH) -> Path:
    from Qt import QtCore, QtGui, QtWidgets

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])  # noqa: F841
    image = QtGui.QImage(SIZE, SIZE, QtGui.QImage.Format_ARGB32)
    image.fill(QtCore.Qt.transparent)
    painter = QtGui.QPainter(image)
    painter.setRenderHint(QtGui.QPainter.Antialiasing)
    # Body cross-section: a grey ellipse on a dark rounded square.
    painter.setPen(QtCore.Qt.NoPen)
    painter.setBrush(QtGui.QColor(24, 32, 48))
    painter.drawRoundedRect(QtCore.QRectF(2, 2, SIZE - 4, SIZE - 4), 22, 22)
    painter.setBrush(QtGui.QColor(92, 92, 92))
    painter.drawEllipse(QtCore.QRectF(12, 26, 104, 80))
    # Organs in the catalog colours: liver, spleen, kidneys, spine; and a tumor in the liver.
    shapes = [
        ((221, 130, 101), QtCore.QRectF(18, 38, 48, 40)),
        ((157, 108, 162), QtCore.QRectF(84, 44, 24, 28)),
        ((185, 102, 83), QtCore.QRectF(38, 76, 18, 22)),
        ((185, 102, 83), QtCore.QRectF(74, 76, 18, 22)),
        ((241, 214, 145), QtCore.QRectF(57, 82, 14, 14)),
        ((120, 205, 80), QtCore.QRectF(34, 50, 14, 14)),
    ]
    for color, rect in shapes:
        painter.setBrush(QtGui.QColor(*color))
        painter.drawEllipse(rect)
    painter.end()
    path.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(path), "PNG"):
        raise OSError(f"Could not write {path}")
    return path


if __name__ == "__main__":
    print(draw_icon())
