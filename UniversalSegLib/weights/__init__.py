"""Model weights: checkpoint formats and ``load_model`` (checkpoint.py), downloads and cache (manager.py).

Attributes are imported lazily so that importing one part does not import the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_ATTRIBUTES: dict[str, str] = {
    "CheckpointError": "UniversalSegLib.weights.checkpoint",
    "LoadedCheckpoint": "UniversalSegLib.weights.checkpoint",
    "build_model": "UniversalSegLib.weights.checkpoint",
    "export_official": "UniversalSegLib.weights.checkpoint",
    "load_model": "UniversalSegLib.weights.checkpoint",
    "read_checkpoint": "UniversalSegLib.weights.checkpoint",
    "save_checkpoint": "UniversalSegLib.weights.checkpoint",
    "WeightsManager": "UniversalSegLib.weights.manager",
    "get_weights_path": "UniversalSegLib.weights.manager",
}

__all__ = list(_LAZY_ATTRIBUTES)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_ATTRIBUTES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'UniversalSegLib.weights' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
