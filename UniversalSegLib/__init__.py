"""UniversalSeg: text-prompted CT segmentation with the CLIP-Driven Universal Model.

Public API (imported lazily so that ``import UniversalSegLib`` stays cheap)::

    from UniversalSegLib import load_model, segment, read_image, CLASSES, get_class

See ``docs/ARCHITECTURE.md`` for where each part lives.
"""

from __future__ import annotations

from UniversalSegLib.lazy_exports import lazy_getattr

__version__ = "0.1.0"

_LAZY_ATTRIBUTES: dict[str, str] = {
    "CLASSES": "UniversalSegLib.catalog",
    "PRESETS": "UniversalSegLib.catalog",
    "ClassInfo": "UniversalSegLib.catalog",
    "get_class": "UniversalSegLib.catalog",
    "resolve_classes": "UniversalSegLib.catalog",
    "UniversalModel": "UniversalSegLib.model",
    "load_model": "UniversalSegLib.weights.checkpoint",
    "save_checkpoint": "UniversalSegLib.weights.checkpoint",
    "export_official": "UniversalSegLib.weights.checkpoint",
    "CheckpointError": "UniversalSegLib.weights.checkpoint",
    "WeightsManager": "UniversalSegLib.weights.manager",
    "read_image": "UniversalSegLib.io",
    "segment": "UniversalSegLib.inference",
    "InferenceOptions": "UniversalSegLib.inference",
    "SegmentationResult": "UniversalSegLib.inference",
    "compute_text_embeddings": "UniversalSegLib.text",
}

__all__ = ["__version__", *_LAZY_ATTRIBUTES]

__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES)
