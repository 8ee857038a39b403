"""Image features of earlier runs, kept so that more classes of the same CT are answered in seconds.

The backbone's output does not depend on the classes asked for: per sliding window, the class heads read
only the global image feature ``[256]`` and the 8-channel head input ``[8, r, r, r]``
(:meth:`UniversalSegLib.model.UniversalModel.image_features`). A run records both, window by window, into
an entry of the per-user cache; a later run of the same preprocessed volume with the same weights and the
options that change features (window size, overlap, windows per pass, engine, precision, device kind)
replays them and runs only the heads of its classes.

An entry is a folder named by the key's digest with three files: ``head_features.npy`` (memory-mapped on
reading), ``image_features.npy`` and ``entry.json`` (what the entry was made from, written last). It is
written in a ``.partial-*`` folder and renamed into place when complete, so a crash, a full disk or two
processes writing the same entry leave either one whole entry or none. Entries that are truncated, from
another format or library version, or for other weights are never used: the log says why, the entry is
removed and the network runs. The cache keeps at most ``limit_bytes`` (``$UNIVERSALSEG_FEATURE_CACHE_GB``,
default 4 GB); the least recently used entries are removed first.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import time
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import cache_paths

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
LIMIT_ENV = "UNIVERSALSEG_FEATURE_CACHE_GB"
STORAGE_ENV = "UNIVERSALSEG_FEATURE_CACHE_STORAGE"
DEFAULT_LIMIT_GB = 4.0
HEAD_FEATURES_FILE = "head_features.npy"
IMAGE_FEATURES_FILE = "image_features.npy"
ENTRY_FILE = "entry.json"
PARTIAL_MARK = ".partial-"
STALE_PARTIAL_SECONDS = 24 * 3600
FREE_SPACE_MARGIN = 512 * 1024**2
STORAGE_MODES: tuple[str, ...] = ("exact", "fp16")

# numpy has no bfloat16: such features are stored as their raw 16-bit patterns.
_STORED_NUMPY_DTYPE = {torch.float32: np.float32, torch.float16: np.float16, torch.bfloat16: np.uint16}
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
_DTYPES_BY_NAME = {name: dtype for dtype, name in _DTYPE_NAMES.items()}


class FeatureCacheError(Exception):
    """An entry that must not be used (the message says why)."""


def default_limit_bytes() -> int:
    """``$UNIVERSALSEG_FEATURE_CACHE_GB`` (decimal GB; 0 keeps nothing) or 4 GB."""
    value = os.environ.get(LIMIT_ENV, "").strip()
    if not value:
        return int(DEFAULT_LIMIT_GB * 1e9)
    try:
        gigabytes = float(value)
    except ValueError:
        logger.warning("%s=%r is not a number of GB; using %g GB", LIMIT_ENV, value, DEFAULT_LIMIT_GB)
        return int(DEFAULT_LIMIT_GB * 1e9)
    return max(0, int(gigabytes * 1e9))


def default_storage() -> str:
    """``$UNIVERSALSEG_FEATURE_CACHE_STORAGE`` (``exact`` or ``fp16``), else ``exact``."""
    value = os.environ.get(STORAGE_ENV, "").strip().lower() or "exact"
    if value not in STORAGE_MODES:
        logger.warning("%s=%r is not one of %s; using exact", STORAGE_ENV, value, STORAGE_MODES)
        return "exact"
    return value


def image_digest(image: Any, settings: Mapping[str, Any]) -> str:
    """Digest of a CT (voxels, pixel type, size, spacing, origin, direction) and the preprocessing settings.

    Preprocessing is a function of these (and of the software versions, checked separately), so a run whose
    digest matches needs no preprocessing to find its features.
    """
    import SimpleITK as sitk  # noqa: N813

    digest = hashlib.blake2b(digest_size=20)
    array = sitk.GetArrayViewFromImage(image)
    header = (image.GetPixelIDTypeAsString(), image.GetSize(), image.GetSpacing(), image.GetOrigin())
    digest.update(json.dumps([*header, image.GetDirection(), dict(settings)], sort_keys=True).encode())
    digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


_FINGERPRINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def model_fingerprint(model: torch.nn.Module) -> str:
    """Digest of every parameter and buffer of ``model`` (names, shapes, values).

    Remembered per model object until one of its tensors changes in place (PyTorch's version counters).
    """
    state = model.state_dict(keep_vars=True)
    versions = tuple(tensor._version for tensor in state.values())
    remembered = _FINGERPRINTS.get(model)
    if remembered is not None and remembered[0] == versions:
        return remembered[1]
    digest = hashlib.blake2b(digest_size=20)
    for name, tensor in state.items():
        array = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}{tuple(tensor.shape)}{array.dtype}".encode())
        digest.update(memoryview(array.view(torch.uint8).numpy()).cast("B"))
    fingerprint = digest.hexdigest()
    _FINGERPRINTS[model] = (versions, fingerprint)
    return fingerprint


def software_versions(engine: str) -> dict[str, str]:
    """The versions whose kernels made the features (a different one gives other numbers)."""
    from .. import __version__

    versions = {"universalseg": str(__version__), "torch": torch.__version__.split("+")[0]}
    for package in ("monai", "SimpleITK"):  # preprocessing
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    if engine == "openvino":
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions["openvino"] = importlib.metadata.version("openvino")  # no import: a re-query needs none
    return versions


@dataclass(frozen=True)
class FeatureKey:
    """What makes a run's image features reusable.

    Attributes:
        volume: :func:`image_digest` of the CT and its preprocessing settings.
        weights: :func:`model_fingerprint` of the model.
        settings: options that change the features (window size, overlap, windows per pass, engine,
            precision, device kind, storage mode).
        versions: :func:`software_versions`; not part of the digest, so that an entry from another version
            is found, reported and replaced rather than silently orphaned.
    """

    volume: str
    weights: str
    settings: Mapping[str, Any]
    versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        text = json.dumps({"volume": self.volume, "weights": self.weights, **self.settings}, sort_keys=True)
        return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class StoredFeatures:
    """One complete entry, opened for replay (head features memory-mapped).

    Attributes:
        path: the entry's folder.
        windows: number of windows stored, in the sliding window's visiting order.
        compute_dtype: the dtype the head features had in the run (what the heads read).
        stored_dtype: the dtype they are kept in.
        image_dtype: the dtype the global image features had (kept as float32, which holds it exactly).
        geometry: the preprocessed grid (``shape``, ``affine``, ``crop_start``, ``crop_end``,
            ``resampled_shape``), so that a re-query needs no preprocessing.
    """

    path: Path
    windows: int
    compute_dtype: torch.dtype
    stored_dtype: torch.dtype
    image_dtype: torch.dtype
    head_features: np.ndarray
    image_features: np.ndarray
    geometry: dict[str, Any] = field(default_factory=dict)

    def window_features(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Global features ``[n, 256]`` and head features ``[n, 8, r, r, r]`` of windows ``start:stop``."""
        if stop > self.windows:
            raise FeatureCacheError(
                f"the sliding window asked for window {stop} of an entry with {self.windows}; "
                "delete the feature cache (`universalseg weights clear --all`)"
            )
        head = _to_torch(np.array(self.head_features[start:stop]), self.stored_dtype)
        image = torch.from_numpy(np.array(self.image_features[start:stop]))
        return image.to(self.image_dtype), head.to(self.compute_dtype)


def _to_torch(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    return tensor.view(torch.bfloat16) if dtype == torch.bfloat16 else tensor


def _to_numpy(tensor: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    tensor = tensor.detach().to(device="cpu", dtype=dtype).contiguous()
    return tensor.view(torch.uint16).numpy() if dtype == torch.bfloat16 else tensor.numpy()


@dataclass
class FeatureRecorder:
    """Writes one entry window by window into a partial folder; :meth:`commit` moves it into place.

    Writes go through ordinary file writes (never a writable memory map, which a full disk would turn into
    a crash), with the space reserved up front where the system allows it.
    """

    cache: FeatureCache
    key: FeatureKey
    windows: int
    head_shape: tuple[int, ...]
    compute_dtype: torch.dtype
    stored_dtype: torch.dtype
    geometry: dict[str, Any] = field(default_factory=dict)
    partial: Path = field(init=False)
    written: int = field(default=0, init=False)
    _images: list[np.ndarray] = field(default_factory=list, init=False)
    _file: Any = field(default=None, init=False)
    image_dtype: torch.dtype = field(default=torch.float32, init=False)

    def __post_init__(self) -> None:
        self.partial = (
            self.cache.folder / f"{self.key.digest}{PARTIAL_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.partial.mkdir(parents=True)
        try:
            header = {
                "descr": np.lib.format.dtype_to_descr(np.dtype(_STORED_NUMPY_DTYPE[self.stored_dtype])),
                "fortran_order": False,
                "shape": (self.windows, *self.head_shape),
            }
            self._file = open(self.partial / HEAD_FEATURES_FILE, "wb")  # noqa: SIM115 - closed in commit/abort
            np.lib.format.write_array_header_1_0(self._file, header)
            _reserve(
                self._file, self._file.tell() + entry_bytes(self.windows, self.head_shape, self.stored_dtype)
            )
        except BaseException:
            self.abort()
            raise

    def add(self, image: torch.Tensor, head: torch.Tensor) -> None:
        """Append the features of ``len(head)`` windows (in visiting order)."""
        if self.written + head.shape[0] > self.windows:
            raise FeatureCacheError(f"more than the {self.windows} expected windows were recorded")
        self._write_head(_to_numpy(head, self.stored_dtype))
        self._images.append(image.detach().float().cpu().numpy())  # float32 holds 16-bit values exactly
        self.image_dtype = image.dtype
        self.written += head.shape[0]

    def _write_head(self, array: np.ndarray) -> None:
        self._file.write(memoryview(array).cast("B"))

    def commit(self) -> Path | None:
        """Finish the entry and move it into place; returns its folder (None when another process won)."""
        try:
            if self.written != self.windows:
                raise FeatureCacheError(f"{self.written} of {self.windows} windows were recorded")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            np.save(self.partial / IMAGE_FEATURES_FILE, np.concatenate(self._images))
            entry = {
                "format": FORMAT_VERSION,
                "volume": self.key.volume,
                "weights": self.key.weights,
                "settings": dict(self.key.settings),
                "versions": dict(self.key.versions),
                "windows": self.windows,
                "head_shape": list(self.head_shape),
                "compute_dtype": _DTYPE_NAMES[self.compute_dtype],
                "image_dtype": _DTYPE_NAMES[self.image_dtype],
                "stored_dtype": _DTYPE_NAMES[self.stored_dtype],
                "prepared": self.geometry,
                "created": time.time(),
            }
            with open(self.partial / ENTRY_FILE, "w", encoding="utf-8") as stream:
                json.dump(entry, stream, indent=1)
                stream.flush()
                os.fsync(stream.fileno())
            final = self.cache.folder / self.key.digest
            try:
                os.rename(self.partial, final)
            except OSError as exc:
                if not final.exists():
                    raise
                logger.debug("another process stored %s first (%s); keeping its entry", final.name, exc)
                self.abort()
                return None
            return final
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove the partial folder (nothing half-written is left)."""
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()
        shutil.rmtree(self.partial, ignore_errors=True)


def _reserve(stream: Any, size: int) -> None:
    """Reserve ``size`` bytes for ``stream`` where the system can (a full disk fails here, at once)."""
    allocate = getattr(os, "posix_fallocate", None)
    if allocate is None:
        return
    try:
        allocate(stream.fileno(), 0, size)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        # file systems without fallocate (EOPNOTSUPP, EINVAL): the writes themselves report a full disk


def entry_bytes(windows: int, head_shape: tuple[int, ...], dtype: torch.dtype) -> int:
    """Bytes of an entry's head features (the image features and the description add a few kB)."""
    return int(windows * np.prod(head_shape) * torch.empty((), dtype=dtype).element_size())


class FeatureCache:
    """The per-user store of image features (see the module docstring).

    Args:
        folder: where entries live (default: ``features/`` in the UniversalSeg home folder).
        limit_bytes: most bytes kept (default: :func:`default_limit_bytes`); 0 keeps nothing.
        storage: ``"exact"`` keeps the features in the run's own precision, so a re-query gives the masks of
            a fresh run bit for bit; ``"fp16"`` halves fp32 features (re-query masks then differ from a fresh
            run by float rounding; docs/speed.md has the measured Dice). Default:
            :func:`default_storage`.
    """

    def __init__(
        self, folder: Path | None = None, limit_bytes: int | None = None, storage: str | None = None
    ) -> None:
        storage = default_storage() if storage is None else storage
        if storage not in STORAGE_MODES:
            raise ValueError(f"storage must be one of {STORAGE_MODES}, got {storage!r}")
        self.folder = Path(folder) if folder is not None else cache_paths.feature_cache_folder()
        self.limit_bytes = default_limit_bytes() if limit_bytes is None else max(0, int(limit_bytes))
        self.storage = storage

    def stored_dtype(self, compute_dtype: torch.dtype) -> torch.dtype:
        """The dtype entries keep for features computed in ``compute_dtype``."""
        if self.storage == "fp16" and compute_dtype == torch.float32:
            return torch.float16
        return compute_dtype

    def entries(self) -> list[Path]:
        """Complete entries, least recently used first."""
        if not self.folder.is_dir():
            return []
        found = [
            path
            for path in self.folder.iterdir()
            if PARTIAL_MARK not in path.name and (path / ENTRY_FILE).is_file()  # not one being committed
        ]
        return sorted(found, key=_last_used)

    def size(self) -> int:
        """Bytes on disk of every entry and partial folder."""
        if not self.folder.is_dir():
            return 0
        return sum(_folder_size(path) for path in self.folder.iterdir() if path.is_dir())

    def clear(self) -> None:
        """Remove every entry."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def lookup(self, key: FeatureKey) -> StoredFeatures | None:
        """The entry for ``key``, or None; an entry that must not be used is logged and removed."""
        path = self.folder / key.digest
        if not path.is_dir():
            return None
        try:
            stored = _open_entry(path, key)
        except FeatureCacheError as exc:
            logger.warning(
                "Not using the stored image features in %s: %s; running the network instead", path, exc
            )
            shutil.rmtree(path, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(path / ENTRY_FILE)  # most recently used
        return stored

    def start_recording(
        self,
        key: FeatureKey,
        windows: int,
        head_shape: tuple[int, ...],
        compute_dtype: torch.dtype,
        geometry: Mapping[str, Any] | None = None,
    ) -> FeatureRecorder | None:
        """A recorder for a new entry, or None (with a log line) when it cannot or should not be kept."""
        stored_dtype = self.stored_dtype(compute_dtype)
        needed = entry_bytes(windows, head_shape, stored_dtype)
        if needed > self.limit_bytes:
            logger.info(
                "Image features of this CT (%.1f GB) exceed the feature cache limit (%.1f GB, %s); not kept",
                needed / 1e9,
                self.limit_bytes / 1e9,
                LIMIT_ENV,
            )
            return None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._remove_stale_partials()
            self._evict(needed)
            free = shutil.disk_usage(self.folder).free
            if free < needed + FREE_SPACE_MARGIN:
                logger.warning(
                    "Not keeping image features for later questions: %.1f GB needed, %.1f GB free in %s",
                    needed / 1e9,
                    free / 1e9,
                    self.folder,
                )
                return None
            shape = tuple(head_shape)
            return FeatureRecorder(
                self, key, windows, shape, compute_dtype, stored_dtype, dict(geometry or {})
            )
        except OSError as exc:
            logger.warning("Not keeping image features for later questions: %s", exc)
            return None

    def _evict(self, needed: int) -> None:
        """Remove least recently used entries until ``needed`` more bytes fit under the limit."""
        entries = self.entries()
        total = sum(_folder_size(path) for path in entries)
        for path in entries:
            if total + needed <= self.limit_bytes:
                break
            size = _folder_size(path)
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                total -= size
                logger.info(
                    "Removed the least recently used image features %s (%.1f GB)", path.name, size / 1e9
                )

    def _remove_stale_partials(self) -> None:
        """Partial folders a crashed process left behind (older than a day)."""
        now = time.time()
        for path in self.folder.iterdir():
            if PARTIAL_MARK in path.name:
                with contextlib.suppress(OSError):
                    if now - path.stat().st_mtime > STALE_PARTIAL_SECONDS:
                        shutil.rmtree(path, ignore_errors=True)


def _open_entry(path: Path, key: FeatureKey) -> StoredFeatures:
    """Open and check an entry; :class:`FeatureCacheError` says why it must not be used."""
    try:
        entry = json.loads((path / ENTRY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FeatureCacheError(f"its description cannot be read ({exc})") from exc
    if entry.get("format") != FORMAT_VERSION:
        raise FeatureCacheError(
            f"it was written by another version of UniversalSeg (format {entry.get('format')})"
        )
    versions, expected = entry.get("versions", {}), dict(key.versions)
    if versions != expected:
        changed = ", ".join(
            f"{name} {versions.get(name, '?')} (now {value})"
            for name, value in expected.items()
            if versions.get(name) != value
        )
        raise FeatureCacheError(f"it was made by other software versions: {changed}")
    if entry.get("weights") != key.weights:
        raise FeatureCacheError("it was made with other weights")
    if entry.get("volume") != key.volume or entry.get("settings") != dict(key.settings):
        raise FeatureCacheError("it was made from another image or with other options")
    try:
        compute_dtype = _DTYPES_BY_NAME[entry["compute_dtype"]]
        image_dtype = _DTYPES_BY_NAME[entry["image_dtype"]]
        stored_dtype = _DTYPES_BY_NAME[entry["stored_dtype"]]
        windows = int(entry["windows"])
        head_shape = tuple(int(side) for side in entry["head_shape"])
        geometry = dict(entry["prepared"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FeatureCacheError(f"its description is incomplete ({exc})") from exc
    try:
        head = np.load(path / HEAD_FEATURES_FILE, mmap_mode="r")
        image = np.load(path / IMAGE_FEATURES_FILE)
    except (OSError, ValueError) as exc:
        raise FeatureCacheError(f"a file is missing or truncated ({exc})") from exc
    expected_dtype = np.dtype(_STORED_NUMPY_DTYPE[stored_dtype])
    if head.shape != (windows, *head_shape) or head.dtype != expected_dtype or image.shape[0] != windows:
        raise FeatureCacheError(
            f"its files do not match its description (head features {head.shape} {head.dtype}, "
            f"expected {(windows, *head_shape)} {expected_dtype})"
        )
    return StoredFeatures(path, windows, compute_dtype, stored_dtype, image_dtype, head, image, geometry)


def _last_used(path: Path) -> float:
    try:
        return (path / ENTRY_FILE).stat().st_mtime
    except OSError:
        return 0.0


def _folder_size(path: Path) -> int:
    """Bytes of the files under ``path``; what another process moves or removes meanwhile counts 0."""
    total = 0
    with contextlib.suppress(OSError):  # the folder itself vanished (an entry committed or evicted)
        for item in path.rglob("*"):
            with contextlib.suppress(OSError):
                if item.is_file():
                    total += item.stat().st_size
    return total
