"""No data leaves the machine: a balanced (OpenVINO bf16) and a fast (NNCF int8) conversion write no
telemetry file under the user's home and try no network connection."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Not imported here: importing NNCF alone writes ~/intel/stats unless the switch ran first.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None,
    reason="needs openvino and nncf",
)

REPO_ROOT = Path(__file__).resolve().parents[2]
TELEMETRY_WORDS = ("intel", "telemetry", "openvino", "nncf", "_cid", "stats")

# Loaded by every Python process of the run (the engine and its conversion child): records and refuses
# every attempt to reach another machine.
SITECUSTOMIZE = """
import os
import socket

_LOG = os.environ["NETWORK_ATTEMPTS_LOG"]
_LOCAL = {"localhost", "127.0.0.1", "::1", None}


def _record(what):
    with open(_LOG, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"network blocked by the test: {what}")


_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host not in _LOCAL and not str(host).startswith("127."):
        _record(f"getaddrinfo {host}")
    return _getaddrinfo(host, *args, **kwargs)


_connect = socket.socket.connect


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL:
        _record(f"connect {address}")
    return _connect(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect
socket.socket.connect_ex = connect
"""

CONVERSIONS = textwrap.dedent(
    """
    import sys

    import torch

    from UniversalSegLib.inference.engines.openvino_encoder import compiled_encoder
    from UniversalSegLib.model import UniversalModel

    if __name__ == "__main__":
        torch.manual_seed(0)
        model = UniversalModel("unet").eval()
        for precision in ("bf16", "int8"):  # the balanced and the fast CPU modes
            assert compiled_encoder(model, [32, 32, 32], precision, cache_dir=sys.argv[1]) is not None
        print("converted")
    """
)


def _home_environment(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """This environment with every per-user folder under ``tmp_path/home`` and no "this is CI" variable
    (with one, the libraries would stay silent on their own and the test would prove nothing)."""
    home = tmp_path / "home"
    home.mkdir()
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("CI", "TF_BUILD", "JENKINS_URL", "NNCF_CI", "NNCF_DEV") and not key.startswith("XDG_")
    }
    for name in ("HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA"):
        environment[name] = str(home)
    for name, folder in (("CONFIG", ".config"), ("CACHE", ".cache"), ("DATA", ".local/share")):
        environment[f"XDG_{name}_HOME"] = str(home / folder)
    paths = [str(hooks), str(REPO_ROOT), environment.get("PYTHONPATH", "")]
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    environment["NETWORK_ATTEMPTS_LOG"] = str(tmp_path / "network_attempts.log")
    environment["UNIVERSALSEG_HOME"] = str(tmp_path / "universalseg_home")
    return environment, home


@pytest.mark.slow
def test_balanced_and_fast_conversions_write_no_telemetry_and_send_nothing(tmp_path) -> None:
    environment, home = _home_environment(tmp_path)
    script = tmp_path / "convert.py"
    script.write_text(CONVERSIONS, encoding="utf-8")
    cache = tmp_path / "openvino_cache"
    run = subprocess.run(
        [sys.executable, str(script), str(cache)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert run.returncode == 0 and "converted" in run.stdout, run.stderr[-3000:]
    assert list(cache.glob("unet-32x32x32-*/int8-v*/encoder.xml"))  # both conversions really ran
    written = [path.relative_to(home).as_posix() for path in home.rglob("*") if path.is_file()]
    # Local library caches (matplotlib's font list, which NNCF's import builds) may appear in the per-user
    # cache folder; the telemetry package writes ~/intel (Linux, macOS) or Intel Corporation (Windows).
    assert not (home / "intel").exists() and not (home / "Intel Corporation").exists(), written
    assert [path for path in written if not path.startswith(".cache/")] == [], written
    assert not [path for path in written if any(word in path.lower() for word in TELEMETRY_WORDS)], written
    attempts = tmp_path / "network_attempts.log"
    assert not attempts.exists(), attempts.read_text(encoding="utf-8")


def test_telemetry_stays_off_after_something_else_imported_it(tmp_path) -> None:
    """OpenVINO imported first (it loads the telemetry package): our switch still makes it decline."""
    environment, home = _home_environment(tmp_path)
    code = textwrap.dedent(
        """
        import openvino_telemetry
        from UniversalSegLib.privacy import disable_third_party_telemetry

        disable_third_party_telemetry()
        telemetry = openvino_telemetry.Telemetry(
            app_name="check", app_version="0", tid="G-0", backend="ga4", enable_opt_in_dialog=False
        )
        telemetry.send_event("check", "run", "label")
        print("consent", telemetry.consent)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and "consent False" in run.stdout, run.stderr[-3000:]
    assert not (home / "intel").exists()
    assert not (tmp_path / "network_attempts.log").exists()
