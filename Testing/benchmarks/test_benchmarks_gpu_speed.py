"""``benchmarks/gpu_speed.py`` (issue #13) on the CPU: the synthetic CT's window count, the packed-mask Dice,
and a whole ``--tiny`` run whose JSON has every row, finite seconds and Dice against ``faithful``."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO_ROOT / "benchmarks"
ROWS = ("official", "faithful", "faithful_liver", "balanced", "fast", "balanced_compiled")
STAGES = ("read", "preprocess", "inference", "network", "postprocess", "resample", "write", "total")


def _load(name: str, monkeypatch: pytest.MonkeyPatch):
    """A benchmark script as a module; the ``sys.path`` entries it adds are undone after the test."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    spec = importlib.util.spec_from_file_location(f"{name}_under_test", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("windows", [3, 12])
def test_synthetic_ct_preprocesses_to_the_asked_window_count(tmp_path, monkeypatch, windows):
    from UniversalSegLib.inference.preprocessing import preprocess
    from UniversalSegLib.inference.sliding_window import count_windows, window_grid_shape
    from UniversalSegLib.io import read_image

    synthetic_ct = _load("synthetic_ct", monkeypatch)
    ct = synthetic_ct.write_synthetic_ct(
        tmp_path / "ct.nii.gz", windows, roi_size=16, spacing_mm=(1.5, 1.5, 2.5)
    )
    shape = preprocess(read_image(ct.path)).shape
    assert count_windows(shape, [16] * 3, 0.5) == windows == ct.windows
    assert window_grid_shape(shape, [16] * 3, 0.5) == ct.grid
    assert synthetic_ct.window_grid(48) == (4, 3, 4) and math.prod(synthetic_ct.window_grid(80)) == 80


def test_packed_dice_matches_the_dice_of_the_arrays(monkeypatch):
    gpu_speed = _load("gpu_speed", monkeypatch)
    rng = np.random.default_rng(0)
    a, b = rng.random((7, 9, 11)) < 0.3, rng.random((7, 9, 11)) < 0.4
    packed = gpu_speed.pack_masks({1: a.astype(np.uint8), 2: b})
    expected = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    assert gpu_speed.dice(packed[1], packed[2]) == pytest.approx(expected)
    assert gpu_speed.dice(packed[1], packed[1]) == 1.0
    empty, full = gpu_speed.pack_masks({3: np.zeros((4, 4), bool), 4: np.ones((4, 4), bool)}).values()
    assert gpu_speed.dice(empty, empty) == 1.0 and gpu_speed.dice(empty, full) == 0.0


@pytest.mark.slow  # 30-70 s on 2 shared cores: three processes, about 26 U-Net windows of 16³
def test_tiny_cpu_run_reports_every_row(tmp_path):
    work, json_out = tmp_path / "work", tmp_path / "gpu_speed.json"
    command = [sys.executable, str(BENCHMARKS / "gpu_speed.py"), "--device", "cpu", "--tiny"]
    result = subprocess.run(
        [*command, "--out-dir", str(work), "--json-out", str(json_out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "| backbone | CT windows | row |" in result.stdout
    summary = json.loads(json_out.read_text())
    rows = {row["row"]: row for row in summary["rows"]}
    assert tuple(rows) == ROWS and {row["backbone"] for row in rows.values()} == {"unet"}

    compiled = rows["balanced_compiled"]
    measured = [name for name in ROWS if "skipped" not in rows[name]]
    assert measured == list(ROWS) or (measured == list(ROWS[:-1]) and compiled["skipped"].startswith("n/a"))
    for name in measured:
        row = rows[name]
        assert all(math.isfinite(row["seconds"][stage]) and row["seconds"][stage] >= 0 for stage in STAGES)
        assert row["seconds"]["total"] >= row["seconds"]["inference"] >= row["seconds"]["network"] > 0
        assert row["windows"] > 0 and row["layers"] >= 1 and (row["peak_mib"] or 1) > 0
        assert (work / "outputs" / f"unet_3w_{name}.seg.nrrd").is_file()
        assert set(row["dice"]) == {str(c) for c in ((6, 27) if name == "faithful_liver" else (1, 6, 27))}

    assert rows["official"]["speedup"]["total"] == 1.0
    assert rows["faithful"]["min_dice"] == 1.0  # against itself
    assert rows["official"]["min_dice"] > 0.99 and rows["faithful_liver"]["min_dice"] > 0.99
    # fast on a CPU: no overlap, fewer windows, different masks: a real Dice, not a copy of faithful's
    assert rows["fast"]["windows"] < rows["faithful"]["windows"] == 3
    assert 0 <= rows["fast"]["min_dice"] < 1
    shares = summary["meta"]["positive_share"]["unet_3"]
    assert all(0 < share < 0.5 for share in shares.values())  # calibrated: neither empty nor all-on
    if "seconds" in compiled:
        assert compiled["dice"] == rows["balanced"]["dice"]  # the same options in a second process
        assert any("second process" in note for note in summary["notes"])
