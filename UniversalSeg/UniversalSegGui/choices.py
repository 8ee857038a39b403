"""The choices the module panel offers: models, devices, speed modes, and the classes ticked on first use.

Standard library only, so the module (inside ``setup()``), the weights panel and
``scripts/make_screenshot.py`` all read the same lists. Each entry is ``(value, label)``: the value is
what the parameter node stores and the engine receives, the label is shown (through Slicer's ``_()``).
The values must equal the ``Choice([...])`` lists of ``UniversalSegParameterNode`` and, for speed modes,
``UniversalSegLib.inference.speed.SPEED_MODES`` (tests check both).
"""

from __future__ import annotations

#: Backbones in the order shown; the first is the default.
MODEL_CHOICES: tuple[tuple[str, str], ...] = (
    ("swinunetr", "Swin UNETR (recommended)"),
    ("unet", "U-Net (faster, less accurate)"),
)
#: Devices in the order shown; the first is the default.
DEVICE_CHOICES: tuple[tuple[str, str], ...] = (
    ("auto", "Auto (GPU if available)"),
    ("cpu", "CPU"),
)
#: Speed modes in the order shown; the first (the official settings) is the default.
SPEED_CHOICES: tuple[tuple[str, str], ...] = (
    ("faithful", "Faithful (official settings)"),
    ("balanced", "Balanced (about 4x faster on CPU, nearly the same masks)"),
    ("fast", "Fast (about 5x faster on CPU, borders may shift by a voxel)"),
)
#: Classes ticked the first time the module opens (later, the last selection is remembered).
DEFAULT_CLASSES: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas")


def choice_values(choices: tuple[tuple[str, str], ...]) -> list[str]:
    """The stored values of ``choices``, in display order."""
    return [value for value, _label in choices]
