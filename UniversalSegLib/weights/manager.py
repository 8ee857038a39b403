"""Download cache for the model weights and the demo CT: :class:`WeightsManager`.

Files live in ``<home>/weights/`` where ``home`` is ``$UNIVERSALSEG_HOME`` or the per-user data folder
(:mod:`UniversalSegLib.cache_paths`, which also holds the converted models and measured speeds that
:meth:`WeightsManager.clear_all` removes). Licenses that need acceptance (the weights are
CC BY-NC-ND 4.0) are accepted once per cache, recorded in ``<home>/license_accepted.json``.
URL overrides (mirrors, tests) are described in :mod:`UniversalSegLib.weights.entries`; the download
policy (``.part`` file, Range resume, sha256, atomic rename) in :mod:`UniversalSegLib.weights.download`.
"""

from __future__ import annotations

import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from UniversalSegLib import cache_paths
from UniversalSegLib.io.atomic import atomic_output
from UniversalSegLib.progress import ProgressEvent
from UniversalSegLib.weights.cache_usage import CacheUsage, measure_usage, remove_engine_caches
from UniversalSegLib.weights.download import download_file, part_path
from UniversalSegLib.weights.entries import WeightsCatalog, WeightsItem, url_env_var
from UniversalSegLib.weights.errors import (
    ChecksumError,
    DownloadError,
    LicenseNotAcceptedError,
    UnknownWeightsError,
    WeightsNotFoundError,
)
from UniversalSegLib.weights.license import LicenseStore

logger = logging.getLogger(__name__)

#: ``progress`` argument of :meth:`WeightsManager.download`: ``True`` = tqdm bar on stderr,
#: ``False``/``None`` = silent, or a callback receiving ``ProgressEvent(stage="download", ...)``.
DownloadProgress = bool | None | Callable[[ProgressEvent], None]


def default_home() -> Path:
    """``$UNIVERSALSEG_HOME`` or the per-user data folder (standard library only)."""
    return cache_paths.home_folder()


def import_command(item: WeightsItem) -> str:
    """The shell command that imports a by-hand download of ``item``."""
    return f"universalseg weights import {item.file_name} --name {item.name}"


class WeightsManager:
    """Lists, downloads, imports and clears the catalog's files in a cache folder.

    Args:
        home: cache root; ``$UNIVERSALSEG_HOME`` or the per-user data folder when ``None``.
        catalog: a :class:`WeightsCatalog`, a path to a catalog JSON, or ``None`` for the packaged one.
    """

    retries = 3
    retry_delay = 1.0
    timeout = 30.0

    def __init__(self, home: str | Path | None = None, catalog: WeightsCatalog | str | Path | None = None):
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.cache_dir = cache_paths.weights_folder(self.home)
        self.catalog = catalog if isinstance(catalog, WeightsCatalog) else WeightsCatalog.load(catalog)
        self.licenses = LicenseStore(self.home)

    # -- catalog ----------------------------------------------------------------------------------

    @property
    def default_model(self) -> str:
        return self.catalog.default_model

    def item(self, name: str | None = None) -> WeightsItem:
        """The catalog item ``name`` (the default model when ``None``)."""
        name = name or self.default_model
        try:
            return self.catalog.items[name]
        except KeyError:
            valid = ", ".join(self.catalog.items)
            raise UnknownWeightsError(f"unknown weights name {name!r}; valid names: {valid}") from None

    def list(self) -> list[WeightsItem]:
        """All catalog items (models first, in catalog order)."""
        return sorted(self.catalog.items.values(), key=lambda item: item.kind != "model")

    def path(self, name: str | None = None) -> Path:
        """Where the file of ``name`` is (or will be) in the cache."""
        return self.cache_dir / self.item(name).file_name

    def is_available(self, name: str | None = None) -> bool:
        """Whether the file of ``name`` is in the cache."""
        return self.path(name).is_file()

    # -- licenses ---------------------------------------------------------------------------------

    def needs_license_acceptance(self, name: str | None = None) -> bool:
        """Whether ``name`` has a license that must be accepted and has not been yet."""
        license_info = self.item(name).license
        return bool(license_info and license_info.requires_acceptance) and not self.licenses.is_accepted(
            license_info.id
        )

    def accept_license(self, name: str | None = None) -> None:
        """Record that the license of item ``name`` is accepted (for every item with that license)."""
        license_info = self.item(name).license
        if license_info is not None:
            self.licenses.accept(license_info.id, license_info.url)

    def license_notice(self, name: str | None = None) -> str:
        """Text to show a user before they accept the license of ``name``."""
        item = self.item(name)
        if item.license is None:
            return f"{item.name}: no license information."
        license_info = item.license
        return (
            f"{item.name} ({item.file_name}) is licensed under {license_info.id} ({license_info.url}).\n"
            f"{license_info.text}"
        )

    def _check_license(self, item: WeightsItem, accept_license: bool) -> None:
        if not self.needs_license_acceptance(item.name):
            return
        if accept_license:
            self.accept_license(item.name)
            logger.info("Accepted license %s for %s", item.license.id, item.name)
            return
        raise LicenseNotAcceptedError(
            f"{self.license_notice(item.name)}\n"
            f"Accept it once by passing --accept-license (Python: accept_license=True) before "
            f"downloading {item.name!r}."
        )

    # -- download / import / clear ----------------------------------------------------------------

    def download(
        self,
        name: str | None = None,
        accept_license: bool = False,
        progress: DownloadProgress = True,
        cancel: threading.Event | None = None,
        force: bool = False,
    ) -> Path:
        """Download ``name`` into the cache (a no-op when it is already there) and return its path.

        Raises:
            LicenseNotAcceptedError: the license must be accepted first (``accept_license=True``).
            DownloadError: the URL failed; the message says how to import the file by hand.
            ChecksumError: the file is not the expected one (nothing is kept).
            DownloadCancelledError: ``cancel`` was set (the ``.part`` file is kept to resume).
        """
        item = self.item(name)
        destination = self.path(item.name)
        if destination.is_file() and not force:
            return destination
        self._check_license(item, accept_license)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        url = item.effective_url()
        logger.info("Downloading %s from %s", item.name, url)
        on_bytes, close = _progress_adapter(progress, item)
        try:
            digest = download_file(
                url,
                destination,
                sha256=item.sha256,
                size=item.size,
                on_bytes=on_bytes,
                cancel=cancel,
                retries=self.retries,
                retry_delay=self.retry_delay,
                timeout=self.timeout,
            )
        except ChecksumError:
            raise
        except DownloadError as exc:
            raise DownloadError(self._offline_help(item, url, str(exc))) from exc
        finally:
            close()
        self._warn_unverified(item, digest)
        return destination

    def import_file(self, name: str | None, path: str | Path) -> Path:
        """Copy a local file (e.g. downloaded by hand on another computer) into the cache.

        The file is checked first: a model must be a checkpoint that loads into the item's backbone, and
        size/sha256 must match when the catalog knows them. Nothing is copied when a check fails.

        Raises:
            WeightsNotFoundError: ``path`` is not a file.
            ImportRefusedError: the file is not ``name`` (the message says what it is and what was expected).
        """
        from UniversalSegLib.weights.import_check import check_importable

        item = self.item(name)
        source = Path(path).expanduser()
        if not source.is_file():
            raise WeightsNotFoundError(f"cannot import {item.name!r}: {source} is not a file")
        digest = check_importable(item, source)
        destination = self.path(item.name)
        with atomic_output(destination, overwrite=True) as temporary:
            shutil.copyfile(source, temporary)
        part_path(destination).unlink(missing_ok=True)
        self._warn_unverified(item, digest)
        return destination

    def clear(self, name: str | None = None) -> list[Path]:
        """Delete the cached file (and ``.part``) of ``name``, or of every item when ``None``.

        License acceptance is kept. Returns the deleted paths.
        """
        items = [self.item(name)] if name is not None else list(self.catalog.items.values())
        removed = []
        for item in items:
            destination = self.cache_dir / item.file_name
            for candidate in (destination, part_path(destination)):
                if candidate.is_file():
                    candidate.unlink()
                    removed.append(candidate)
        return removed

    def clear_all(self) -> list[Path]:
        """Delete every cache in :attr:`home`: weights (and ``.part`` files), converted OpenVINO models
        (int8 included), text embeddings and measured speeds; also the converted models and speeds that
        earlier versions kept in the per-user cache folder. License acceptance is kept.

        Returns the deleted files and folders.
        """
        return self.clear() + remove_engine_caches(self.home, self._legacy_folder())

    def usage(self) -> CacheUsage:
        """Bytes on disk of what :meth:`clear_all` would delete, measured now."""
        files = [self.cache_dir / item.file_name for item in self.catalog.items.values()]
        files += [part_path(path) for path in files]
        return measure_usage(self.home, files, self._legacy_folder())

    def _legacy_folder(self) -> Path | None:
        """The per-user cache folder of earlier versions, when this manager uses the default home."""
        if cache_paths.home_is_overridden() or self.home != cache_paths.user_data_folder():
            return None
        return cache_paths.legacy_cache_folder()

    def get_weights_path(
        self,
        name: str | None = None,
        download: bool = True,
        accept_license: bool = False,
        progress: DownloadProgress = True,
        cancel: threading.Event | None = None,
    ) -> Path:
        """Path of the cached file of ``name``, downloading it first when allowed.

        Raises:
            WeightsNotFoundError: not cached and ``download=False``.
            plus the errors of :meth:`download`.
        """
        item = self.item(name)
        if self.is_available(item.name):
            return self.path(item.name)
        if not download:
            raise WeightsNotFoundError(
                f"{item.name!r} is not in the cache {self.cache_dir}. Download it with "
                f"`universalseg weights download {item.name}` or import a local copy with "
                f"`{import_command(item)}`."
            )
        return self.download(item.name, accept_license=accept_license, progress=progress, cancel=cancel)

    # -- messages ---------------------------------------------------------------------------------

    def _offline_help(self, item: WeightsItem, url: str, reason: str) -> str:
        return (
            f"Could not download {item.name!r}: {reason}\n"
            f"Failed URL: {url}\n"
            f"If this computer is offline, download the file on another computer from\n"
            f"  {item.url}\n"
            f"then import it here with\n"
            f"  {import_command(item)}\n"
            f"(or copy it to {self.path(item.name)}). A mirror URL can be set with {url_env_var(item.name)}."
        )

    @staticmethod
    def _warn_unverified(item: WeightsItem, digest: str) -> None:
        if item.sha256 is None:
            logger.warning(
                "The checksum of %s could not be verified (no sha256 in the catalog); its sha256 is %s",
                item.file_name,
                digest,
            )


def get_weights_path(
    name: str | None = None,
    download: bool = True,
    accept_license: bool = False,
    progress: DownloadProgress = True,
) -> Path:
    """:meth:`WeightsManager.get_weights_path` on the default cache."""
    return WeightsManager().get_weights_path(
        name, download=download, accept_license=accept_license, progress=progress
    )


def _progress_adapter(
    progress: DownloadProgress, item: WeightsItem
) -> tuple[Callable | None, Callable[[], None]]:
    """(bytes callback, close function) for the ``progress`` argument of ``download``."""
    if not progress:
        return None, lambda: None
    if callable(progress):
        start = time.perf_counter()
        last = {"time": -1.0}

        def emit(done: int, total: int | None) -> None:
            now = time.perf_counter()
            if done != total and now - last["time"] < 0.25:  # at most 4 events a second
                return
            last["time"] = now
            elapsed = now - start
            eta = elapsed / done * (total - done) if total and done else None
            progress(ProgressEvent("download", done, total or 0, elapsed, eta, item.file_name))

        return emit, lambda: None

    from tqdm import tqdm

    bar = tqdm(
        total=item.size, unit="B", unit_scale=True, unit_divisor=1024, desc=item.file_name, file=sys.stderr
    )

    def update(done: int, total: int | None) -> None:
        if total and bar.total != total:
            bar.total = total
        elif done == bar.n:
            return
        bar.n = done
        bar.refresh()

    return update, bar.close
