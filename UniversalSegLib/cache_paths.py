"""The one per-user folder that holds every UniversalSeg cache, found with the standard library only.

The folder ("home") is ``$UNIVERSALSEG_HOME`` or the per-user data folder that
``platformdirs.user_data_dir("UniversalSeg", appauthor=False)`` names (computed here without platformdirs,
which a stock 3D Slicer does not have):

* Linux and other Unix: ``$XDG_DATA_HOME/UniversalSeg`` (when it is an absolute path), else
  ``~/.local/share/UniversalSeg``;
* macOS: ``$XDG_DATA_HOME/UniversalSeg`` likewise, else ``~/Library/Application Support/UniversalSeg``;
* Windows: ``<Local AppData>\\UniversalSeg`` (the shell's Local AppData folder, else ``%LOCALAPPDATA%``).

Layout::

    weights/                downloaded weights and the demo CT (WeightsManager)
    openvino/               converted OpenVINO models, with their int8 models inside
    embeddings/             cached text embeddings
    speed_probe.json        seconds per window measured on this machine (the time estimate)
    license_accepted.json   accepted licenses (kept when the cache is cleared)

Earlier versions kept ``openvino/`` and ``speed_probe.json`` in the per-user *cache* folder
(:func:`legacy_cache_folder`); clearing the cache removes them there too.
"""

from __future__ import annotations

import os
import posixpath
import sys
from pathlib import Path

HOME_ENV = "UNIVERSALSEG_HOME"
APP_NAME = "UniversalSeg"
WEIGHTS_FOLDER = "weights"
OPENVINO_FOLDER = "openvino"
EMBEDDINGS_FOLDER = "embeddings"
FEATURES_FOLDER = "features"
COMPILE_FOLDER = "torch_compile"
SPEED_RATES_FILE = "speed_probe.json"


def user_data_folder(app_name: str = APP_NAME) -> Path:
    """The per-user data folder, as ``platformdirs.user_data_dir(app_name, appauthor=False)`` names it."""
    return _per_user_folder(app_name, "XDG_DATA_HOME", "~/.local/share", "~/Library/Application Support", "")


def legacy_cache_folder(app_name: str = APP_NAME) -> Path:
    """Where earlier versions kept converted models and rates: as ``platformdirs.user_cache_dir``."""
    return _per_user_folder(app_name, "XDG_CACHE_HOME", "~/.cache", "~/Library/Caches", "Cache")


def _per_user_folder(app_name: str, xdg_variable: str, linux: str, macos: str, windows_leaf: str) -> Path:
    """platformdirs' rule: Windows local app data (+ a leaf), else an absolute XDG folder, else a default."""
    if sys.platform == "win32":
        folder = Path(os.path.normpath(_windows_local_appdata())) / app_name
        return folder / windows_leaf if windows_leaf else folder
    xdg = os.environ.get(xdg_variable, "")
    if posixpath.isabs(xdg):
        return Path(xdg) / app_name
    return Path(os.path.expanduser(macos if sys.platform == "darwin" else linux)) / app_name


def home_folder() -> Path:
    """``$UNIVERSALSEG_HOME`` or :func:`user_data_folder`: the folder that holds every cache."""
    override = os.environ.get(HOME_ENV)
    if override:
        return Path(override).expanduser()
    return user_data_folder()


def home_is_overridden() -> bool:
    """Whether ``$UNIVERSALSEG_HOME`` chooses the folder."""
    return bool(os.environ.get(HOME_ENV))


def weights_folder(home: Path | None = None) -> Path:
    return (home or home_folder()) / WEIGHTS_FOLDER


def openvino_folder(home: Path | None = None) -> Path:
    return (home or home_folder()) / OPENVINO_FOLDER


def embeddings_folder(home: Path | None = None) -> Path:
    return (home or home_folder()) / EMBEDDINGS_FOLDER


def feature_cache_folder(home: Path | None = None) -> Path:
    """Image features kept for re-queries (:mod:`UniversalSegLib.inference.feature_cache`)."""
    return (home or home_folder()) / FEATURES_FOLDER


def compile_folder(home: Path | None = None) -> Path:
    """``torch.compile``'s artefacts, reused by later processes (``inference/engines/torch_compile.py``)."""
    return (home or home_folder()) / COMPILE_FOLDER


def speed_rates_file(home: Path | None = None) -> Path:
    return (home or home_folder()) / SPEED_RATES_FILE


def _windows_local_appdata() -> str:
    """The shell's Local AppData folder (what platformdirs asks for), else ``%LOCALAPPDATA%``."""
    try:
        return _known_folder_local_appdata()
    except (OSError, AttributeError, ImportError, ValueError):
        pass
    return os.environ.get("LOCALAPPDATA") or os.path.expanduser(r"~\AppData\Local")


def _known_folder_local_appdata() -> str:  # pragma: no cover - Windows only
    """``SHGetKnownFolderPath(FOLDERID_LocalAppData)`` through ctypes."""
    import ctypes
    import uuid
    from ctypes import wintypes

    class Guid(ctypes.Structure):
        _fields_ = [("data", ctypes.c_ubyte * 16)]

    folder_id = Guid()
    folder_id.data[:] = uuid.UUID("F1B32785-6FBA-4FCF-9D55-7B8E7F157091").bytes_le
    path = ctypes.c_wchar_p()
    shell32 = ctypes.windll.shell32
    shell32.SHGetKnownFolderPath.argtypes = [
        ctypes.POINTER(Guid),
        wintypes.DWORD,
        wintypes.HANDLE,
        ctypes.POINTER(ctypes.c_wchar_p),
    ]
    result = shell32.SHGetKnownFolderPath(ctypes.byref(folder_id), 0, None, ctypes.byref(path))
    try:
        if result != 0 or not path.value:
            raise OSError(f"SHGetKnownFolderPath failed ({result})")
        return path.value
    finally:
        ctypes.windll.ole32.CoTaskMemFree(path)
