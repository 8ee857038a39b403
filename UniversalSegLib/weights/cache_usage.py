"""What the caches in the UniversalSeg home folder take on disk, and deleting the engines' caches.

Sizes are measured from the files (nothing is estimated). Standard library only: the Slicer panel uses it
before any dependency is installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from UniversalSegLib import cache_paths


@dataclass(frozen=True)
class CacheUsage:
    """Bytes on disk, measured.

    Attributes:
        weights: downloaded weights, the demo CT and partial downloads.
        converted_models: OpenVINO models converted from the weights (int8 models, compiled copies).
        image_features: image features kept so that more classes can be asked for in seconds.
        other: text embeddings and measured speeds.
    """

    weights: int = 0
    converted_models: int = 0
    other: int = 0
    image_features: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.converted_models + self.image_features + self.other

    def describe(self, translate: Callable[[str], str] = str) -> str:
        """``1.1 GB (weights 245 MB, converted models 764 MB, other 4 kB)`` or ``empty``.

        Args:
            translate: Slicer's ``_`` for the words, in the module's panel.
        """
        _ = translate
        if self.total == 0:
            return _("empty")
        parts = [
            f"{label} {format_size(size)}"
            for label, size in (
                (_("weights"), self.weights),
                (_("converted models"), self.converted_models),
                (_("image features"), self.image_features),
                (_("other"), self.other),
            )
            if size
        ]
        return f"{format_size(self.total)} ({', '.join(parts)})"


def format_size(size: int) -> str:
    """``0 B``, ``12 kB``, ``245 MB``, ``1.2 GB`` (decimal units, as file managers show them)."""
    for unit, factor in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= factor:
            value = size / factor
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
    return f"{size} B"


def path_size(path: Path) -> int:
    """Bytes of a file, or of every file below a folder (links are not followed); 0 when missing."""
    try:
        if not path.is_dir() or path.is_symlink():
            return path.lstat().st_size if path.is_file() else 0
    except OSError:
        return 0
    total = 0
    for folder, _subfolders, files in os.walk(path):
        for name in files:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue
    return total


def engine_cache_paths(home: Path, legacy_folder: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(converted-model folders, other cache paths) in ``home`` and, if given, the earlier cache folder."""
    converted = [cache_paths.openvino_folder(home)]
    other = [
        cache_paths.embeddings_folder(home),
        cache_paths.speed_rates_file(home),
        cache_paths.feature_cache_folder(home),
    ]
    if legacy_folder is not None:
        converted.append(cache_paths.openvino_folder(legacy_folder))
        other.append(cache_paths.speed_rates_file(legacy_folder))
    return converted, other


def measure_usage(home: Path, weights_files: Iterable[Path], legacy_folder: Path | None = None) -> CacheUsage:
    """Measure the weights files, the converted models and the other caches of ``home``."""
    converted, other = engine_cache_paths(home, legacy_folder)
    features = cache_paths.feature_cache_folder(home)
    return CacheUsage(
        weights=sum(path_size(path) for path in weights_files),
        converted_models=sum(path_size(path) for path in converted),
        image_features=path_size(features),
        other=sum(path_size(path) for path in other if path != features),
    )


def remove_engine_caches(home: Path, legacy_folder: Path | None = None) -> list[Path]:
    """Delete the converted models, embeddings, image features and measured speeds; return what was deleted.

    Raises:
        OSError: a file could not be deleted (e.g. held open by a running segmentation on Windows).
    """
    converted, other = engine_cache_paths(home, legacy_folder)
    removed = []
    for path in converted + other:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(path)
    if legacy_folder is not None:
        with contextlib.suppress(OSError):
            legacy_folder.rmdir()  # only when nothing else is left in it
    return removed
