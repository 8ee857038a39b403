"""Model weights: checkpoint formats and ``load_model`` (checkpoint.py), downloads and cache (manager.py).

Attributes are imported lazily so that importing one part does not import the others.
"""

from __future__ import annotations

from UniversalSegLib.lazy_exports import lazy_getattr

_LAZY_ATTRIBUTES: dict[str, str] = {
    "CheckpointError": "UniversalSegLib.weights.checkpoint",
    "LoadedCheckpoint": "UniversalSegLib.weights.checkpoint",
    "build_model": "UniversalSegLib.weights.checkpoint",
    "export_official": "UniversalSegLib.weights.checkpoint",
    "load_model": "UniversalSegLib.weights.checkpoint",
    "read_checkpoint": "UniversalSegLib.weights.checkpoint",
    "save_checkpoint": "UniversalSegLib.weights.checkpoint",
    "WeightsManager": "UniversalSegLib.weights.manager",
    "WeightsError": "UniversalSegLib.weights.errors",
    "DownloadError": "UniversalSegLib.weights.errors",
    "ChecksumError": "UniversalSegLib.weights.errors",
    "LicenseNotAcceptedError": "UniversalSegLib.weights.errors",
    "WeightsNotFoundError": "UniversalSegLib.weights.errors",
    "get_weights_path": "UniversalSegLib.weights.manager",
}

__all__ = list(_LAZY_ATTRIBUTES)

__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES)
