"""The choices the module panel offers: models, devices, speed modes, and the classes ticked on first use.

Standard library only, so the module (inside ``setup()``), the weights panel and
``scripts/make_screenshot.py`` all read the same lists. Each entry is ``(value, label)``: the value is
what the parameter node stores and the engine receives, the label is shown (through Slicer's ``_()``).
The values come from the library's one declaration (``UniversalSegLib.run_choices``, standard library
only, so this works before torch is installed) in its order; this file adds the labels. The
``Choice([...])`` lists of ``UniversalSegParameterNode`` must list the same values (a test checks).
"""

from __future__ import annotations

from UniversalSegLib.run_choices import DEVICES, MODEL_NAMES, SPEED_MODES

_MODEL_LABELS = {
    "swinunetr": "Swin UNETR (recommended)",
    "unet": "U-Net (faster, less accurate)",
}
#: The panel offers two of the engine's devices (``cuda:N`` and ``mps`` are for the command line).
_DEVICE_LABELS = {
    "auto": "Auto (GPU if available)",
    "cpu": "CPU",
}
_SPEED_LABELS = {
    "faithful": "Faithful (official settings)",
    "balanced": "Balanced (about 4x faster on CPU, nearly the same masks)",
    "fast": "Fast (about 5x faster on CPU, borders may shift by a voxel)",
}

#: Backbones in the order shown; the first is the default.
MODEL_CHOICES: tuple[tuple[str, str], ...] = tuple((name, _MODEL_LABELS[name]) for name in MODEL_NAMES)
#: Devices in the order shown; the first is the default.
DEVICE_CHOICES: tuple[tuple[str, str], ...] = tuple(
    (name, _DEVICE_LABELS[name]) for name in DEVICES if name in _DEVICE_LABELS
)
#: Speed modes in the order shown; the first (the official settings) is the default.
SPEED_CHOICES: tuple[tuple[str, str], ...] = tuple((mode, _SPEED_LABELS[mode]) for mode in SPEED_MODES)
#: Classes ticked the first time the module opens (later, the last selection is remembered).
DEFAULT_CLASSES: tuple[str, ...] = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas")


def choice_values(choices: tuple[tuple[str, str], ...]) -> list[str]:
    """The stored values of ``choices``, in display order."""
    return [value for value, _label in choices]
