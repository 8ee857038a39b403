"""The names a run is configured with, declared once: released models, devices and speed modes.

Standard library only: the Slicer module reads them before torch is installed, and the model, the command
line, the inference options and the panel's choices (``UniversalSeg/UniversalSegGui/choices.py``) import
them. The weights catalog (``resources/weights_catalog.json``) is data; a test checks that its models are
these.
"""

from __future__ import annotations

import re

#: Released models (backbones), in the order offered; the first is the default.
MODEL_NAMES: tuple[str, ...] = ("swinunetr", "unet")
DEFAULT_MODEL = MODEL_NAMES[0]

#: Devices a run can ask for; ``cuda:N`` picks one GPU. ``auto``: CUDA, else Apple MPS, else the CPU.
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
DEFAULT_DEVICE = DEVICES[0]

#: Speed modes, from the official settings to the fastest (docs/speed.md); the first is the default.
SPEED_MODES: tuple[str, ...] = ("faithful", "balanced", "fast")
DEFAULT_SPEED = SPEED_MODES[0]

_GPU_INDEX = re.compile(r"cuda:\d+")


def is_device_name(value: str) -> bool:
    """Whether ``value`` names a device: one of :data:`DEVICES`, or ``cuda:N``."""
    return value in DEVICES or _GPU_INDEX.fullmatch(value) is not None
