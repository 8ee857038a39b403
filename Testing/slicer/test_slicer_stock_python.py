"""The panel's start-up path in a stock Slicer's Python: no torch, monai, platformdirs, openvino, ...

``stock_slicer_startup.py`` runs in a subprocess whose imports are limited to the standard library and
what a stock 3D Slicer bundles (numpy, SimpleITK, vtk, slicer, Qt). It builds the real widgets, queries
the GPU, refreshes the weights row, opens and clears a filled cache, and fills the time estimate for a CT
of 512 x 512 x 300 voxels; this test checks that nothing failed and that what the panel showed makes sense.
No ``$UNIVERSALSEG_HOME``: the per-user folder is found from ``$XDG_DATA_HOME`` as platformdirs would.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("Qt")
pytest.importorskip("slicer")

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DIMENSIONS = (512, 512, 300)
SPACING = (0.78, 0.78, 1.25)
#: Files put into the cache before the panel opens: path below the home folder -> bytes.
CACHED_FILES = {
    "weights/clip_driven_universal_unet.pth": 3000,
    "openvino/swinunetr-96x96x96-0123/encoder.bin": 5000,
    "openvino/swinunetr-96x96x96-0123/int8-v1/encoder.bin": 2000,
    "speed_probe.json": 2,
}


def expected_windows(dimensions, spacing, overlap, roi=96) -> int:
    """Sliding windows at 1.5 mm, counted independently of the code under test."""
    count = 1
    for size, space in zip(dimensions, spacing, strict=True):
        voxels = max(math.ceil(size * space / 1.5 - 1e-6), roi)
        count *= 1 if voxels == roi else math.ceil((voxels - roi) / (roi * (1 - overlap))) + 1
    return count


@pytest.fixture(scope="module")
def stock_run(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("stock_slicer")
    home = folder / "xdg_data" / "UniversalSeg"
    for relative, size in CACHED_FILES.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_bytes(b"{}" if relative.endswith(".json") else b"\0" * size)
    (home / "license_accepted.json").write_text("{}", encoding="utf-8")
    removed = ("PYTHONPATH", "PYTHONHOME", "UNIVERSALSEG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME")
    environment = {key: value for key, value in os.environ.items() if key not in removed}
    environment.update(
        HOME=str(folder / "home"),
        XDG_DATA_HOME=str(folder / "xdg_data"),
        XDG_CACHE_HOME=str(folder / "xdg_cache"),
        QT_QPA_PLATFORM="offscreen",
    )
    out = folder / "seen.json"
    paths = sysconfig.get_paths()
    command = [
        sys.executable,
        "-S",  # no site-packages: the script serves only what a stock Slicer has
        str(HERE / "stock_slicer_startup.py"),
        os.pathsep.join(dict.fromkeys([paths["purelib"], paths["platlib"]])),
        str(REPO_ROOT),
        str(out),
        "x".join(map(str, DIMENSIONS)),
        "x".join(map(str, SPACING)),
    ]
    completed = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, cwd=folder
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stderr, completed.stderr
    seen = json.loads(out.read_text(encoding="utf-8"))
    seen["home_expected"] = str(home)
    return seen


def test_nothing_is_logged_and_no_third_party_package_is_loaded(stock_run):
    assert stock_run["log"] == []
    assert stock_run["loaded"] == []
    assert "platformdirs" not in stock_run["looked_for"]


def test_weights_row_shows_measured_sizes_and_license_state(stock_run):
    assert stock_run["home"] == stock_run["home_expected"]
    assert Path(stock_run["rates_file"]).parent == Path(stock_run["home"])  # one folder for every cache
    assert stock_run["weights_status"]["unet"].startswith("downloaded, 3.0 kB")
    assert stock_run["weights_status"]["swinunetr"].startswith("not downloaded yet")
    # 3000 B of weights, 7000 B of converted models, 2 B of rates: all measured on disk.
    assert (
        stock_run["cache_text"]
        == f"10 kB (weights 3.0 kB, converted models 7.0 kB, other 2 B) in {stock_run['home']}"
    )
    assert stock_run["license_needed"] is True


def test_open_and_clear_cache_cover_every_cache(stock_run):
    home = Path(stock_run["home"])
    assert stock_run["opened"] == [str(home)] == [stock_run["open_folder_returned"]]
    assert (
        str(home) in stock_run["confirmations"][0]
        and ": 10 kB (weights 3.0 kB" in stock_run["confirmations"][0]
    )
    assert sorted(stock_run["cleared"]) == sorted(
        str(home / path)
        for path in ("weights/clip_driven_universal_unet.pth", "openvino", "speed_probe.json")
    )
    assert not (home / "weights" / "clip_driven_universal_unet.pth").exists()
    assert not (home / "openvino").exists() and not (home / "speed_probe.json").exists()
    assert (home / "license_accepted.json").is_file()
    assert stock_run["weights_status_after_clear"].startswith("not downloaded yet")
    assert stock_run["cache_text_after_clear"] == f"empty in {home}"
    assert "errors" not in stock_run


def test_gpu_query_says_no_gpu_and_the_estimate_is_static(stock_run):
    assert stock_run["gpu"] is None
    full, sparse = expected_windows(DIMENSIONS, SPACING, 0.5), expected_windows(DIMENSIONS, SPACING, 0.25)
    assert full == 125 and sparse == 64
    pattern = re.compile(r"Estimated time on CPU: about (?P<time>[\dhmins ]+) \((?P<windows>\d+) windows\)\.")
    times = {}
    for key, text in stock_run["estimates"].items():
        match = pattern.fullmatch(text)
        assert match, (key, text)
        windows = int(match["windows"])
        # fast keeps overlap 0.5 where the CPU has native bf16, else it uses overlap 0.25.
        assert windows == full or (key.split("/")[1] == "fast" and windows == sparse), (key, text)
        times[key] = match["time"]
    model_speed = {key.rsplit("/", 1)[0] for key in times}
    assert all(times[f"{key}/auto"] == times[f"{key}/cpu"] for key in model_speed)  # no GPU: auto is the CPU
    assert times["swinunetr/faithful/cpu"] != times["swinunetr/balanced/cpu"] != times["swinunetr/fast/cpu"]
