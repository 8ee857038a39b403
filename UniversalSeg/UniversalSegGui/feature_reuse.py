"""Whether the next run can reuse the image features of the last one, and what such a re-query costs.

The engine keeps the image features of a run in the per-user cache
(``UniversalSegLib.inference.feature_cache``) and answers a later run of the same volume, weights and
feature-changing options by computing only the class heads: seconds instead of minutes. The engine keys
its cache by the preprocessed voxels, which the panel cannot see before a run; so the panel remembers what
its last successful run that kept features was for: the volume node, the state of its voxels and
geometry, and the feature settings (``engine_command.FeatureSettings``). A run whose volume and settings
are the same is estimated as a re-query; anything else gets the normal estimate.

Standard library only (and the stdlib-only class catalog): the estimate works before torch is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from UniversalSegLib import cache_paths

#: What a re-query costs on 2 CPU cores, end to end (the one place these figures live; measured with
#: benchmarks/feature_cache_requery.py, docs/speed.md). Fixed part: starting the engine (Python, torch and
#: MONAI imports: about 5.5 s), exporting and reading the CT, loading the model, post-processing, writing
#: and importing the result.
REQUERY_FIXED_SECONDS = 8.0
#: Per sliding window and computed class: the class head and blending (2.2 s for 80 windows, 2 classes).
REQUERY_SECONDS_PER_WINDOW_AND_CLASS = 0.015


@dataclass(frozen=True)
class VolumeState:
    """What a volume node's image features depend on, read from the node.

    Attributes:
        node_id: the node's ID in the scene.
        voxels_modified: the image data's modification time (VTK's ``GetMTime``: it grows whenever the
            voxels, or the image data object itself, change).
        geometry: dimensions, spacing, origin and IJK-to-RAS directions.
    """

    node_id: str
    voxels_modified: int
    geometry: tuple[Hashable, ...]


def volume_state(volume_node: Any) -> VolumeState | None:
    """The :class:`VolumeState` of a scalar volume node, or ``None`` when it has no image data."""
    image = volume_node.GetImageData() if volume_node is not None else None
    if image is None:
        return None
    directions = [[0.0] * 3 for _row in range(3)]
    volume_node.GetIJKToRASDirections(directions)
    geometry = (
        tuple(image.GetDimensions()),
        tuple(volume_node.GetSpacing()),
        tuple(volume_node.GetOrigin()),
        tuple(tuple(row) for row in directions),
    )
    return VolumeState(str(volume_node.GetID() or ""), int(image.GetMTime()), geometry)


def feature_cache_has_entries(folder: Path | None = None) -> bool:
    """Whether the engine's feature cache folder holds anything (it is gone after the cache is cleared)."""
    folder = folder or cache_paths.feature_cache_folder()
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


class FeatureMemory:
    """The volume and settings of the last successful run whose image features the engine kept.

    Args:
        cache_has_entries: whether the engine's cache still holds features (replaceable in tests).
    """

    def __init__(self, cache_has_entries: Callable[[], bool] = feature_cache_has_entries) -> None:
        self._cache_has_entries = cache_has_entries
        self._volume: VolumeState | None = None
        self._settings: Hashable | None = None

    def remember(self, volume: VolumeState | None, settings: Hashable) -> None:
        """Note that a run of ``volume`` (its state when the run started) with ``settings`` kept features."""
        if volume is None:
            return
        self._volume, self._settings = volume, settings

    def forget(self) -> None:
        self._volume = self._settings = None

    def fits(self, volume_node: Any, settings: Hashable) -> bool:
        """Whether a run of ``volume_node`` with ``settings`` can reuse the remembered run's features."""
        if self._volume is None or settings != self._settings:
            return False
        return volume_state(volume_node) == self._volume and self._cache_has_entries()


def computed_class_count(class_keys: Iterable[str]) -> int:
    """Classes whose heads a run computes: the selection and the organs its post-processing needs."""
    from UniversalSegLib.catalog import get_class, postprocess_requirements

    indices = {get_class(key).index for key in class_keys}
    return len(indices | set(postprocess_requirements(indices)))


def requery_seconds(windows: int, computed_classes: int) -> float:
    """Estimated seconds of a run that reuses stored image features (2 CPU cores)."""
    return REQUERY_FIXED_SECONDS + windows * computed_classes * REQUERY_SECONDS_PER_WINDOW_AND_CLASS
