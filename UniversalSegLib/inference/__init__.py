"""Inference engine: SimpleITK CT → per-class uint8 masks on the input grid (MODEL_SPEC §3).

Attributes are imported lazily, so that e.g. ``UniversalSegLib.inference.statistics`` loads without
MONAI and the model.
"""

from __future__ import annotations

from UniversalSegLib.lazy_exports import lazy_getattr

_LAZY_ATTRIBUTES: dict[str, str] = {
    "InferenceError": "UniversalSegLib.inference.errors",
    "SegmentationCancelled": "UniversalSegLib.inference.errors",
    "InferenceOptions": "UniversalSegLib.inference.options",
    "SegmentationResult": "UniversalSegLib.inference.pipeline",
    "segment": "UniversalSegLib.inference.pipeline",
    "Predictor": "UniversalSegLib.inference.sliding_window",
    "options_for_speed": "UniversalSegLib.inference.speed",
    "SPEED_MODES": "UniversalSegLib.inference.speed",
}

__all__ = list(_LAZY_ATTRIBUTES)

__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES)
