"""CPU time estimate from the volume size, and the small-GPU warning."""

from __future__ import annotations

import pytest
from UniversalSegGui import time_estimate
from UniversalSegGui.time_estimate import (
    MIN_GPU_MEMORY_BYTES,
    cpu_reports_native_bf16,
    estimate_for_speed,
    estimate_seconds,
    gpu_memory_warning,
    window_count,
)

from UniversalSegLib.inference import estimate as engine_estimate


def test_window_count_follows_the_1_5_mm_grid():
    assert window_count((64, 64, 64), (1.5, 1.5, 1.5)) == 1  # smaller than one window: padded
    assert window_count((96, 96, 96), (1.5, 1.5, 1.5)) == 1
    assert window_count((97, 96, 96), (1.5, 1.5, 1.5)) == 2
    # 512 x 512 x 100 at 0.8 x 0.8 x 2.5 mm -> 274 x 274 x 167 voxels: 5 x 5 x 3 windows (step 48).
    assert window_count((512, 512, 100), (0.8, 0.8, 2.5)) == 5 * 5 * 3
    # Less overlap, fewer windows (step 72): ceil(178 / 72) + 1 = 4, ceil(71 / 72) + 1 = 2.
    assert window_count((512, 512, 100), (0.8, 0.8, 2.5), overlap=0.25) == 4 * 4 * 2
    with pytest.raises(ValueError, match="overlap"):
        window_count((10, 10, 10), (1, 1, 1), overlap=1.0)


def test_estimate_uses_a_measured_rate_when_given():
    default = estimate_seconds((512, 512, 100), (0.8, 0.8, 2.5), "unet")
    measured = estimate_seconds((512, 512, 100), (0.8, 0.8, 2.5), "unet", seconds_per_window=10.0)
    assert measured.seconds == 75 * 10.0
    assert default.windows == measured.windows and default.seconds != measured.seconds
    assert (
        estimate_seconds((96,) * 3, (1.5,) * 3, "swinunetr").seconds
        > estimate_seconds((96,) * 3, (1.5,) * 3, "unet").seconds
    )


def test_gpu_memory_warning_below_8_gb_only():
    assert gpu_memory_warning(None) == ""
    assert gpu_memory_warning(MIN_GPU_MEMORY_BYTES) == ""
    warning = gpu_memory_warning(6 * 1024**3, "GTX 1060")
    assert "GTX 1060 has 6.0 GB" in warning and "CPU" in warning


def test_cpu_flags_tell_native_bf16_without_torch(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512bw\n", encoding="utf-8")
    assert not cpu_reports_native_bf16(cpuinfo)
    cpuinfo.write_text("flags\t: fpu avx2 avx512f avx512_bf16 amx_tile\n", encoding="utf-8")
    assert cpu_reports_native_bf16(cpuinfo)
    assert not cpu_reports_native_bf16(tmp_path / "missing")


@pytest.mark.parametrize("torch_there", [True, False])
def test_estimate_uses_the_rate_measured_on_this_machine(monkeypatch, tmp_path, torch_there):
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path))  # nothing measured yet
    if not torch_there:  # a stock Slicer before the first run: no torch, the static path
        monkeypatch.setattr(time_estimate, "torch_installed", lambda: False)
    shape, spacing = (512, 512, 100), (0.8, 0.8, 2.5)
    table = estimate_for_speed(shape, spacing, "unet", "faithful", device="cpu")
    assert table.windows == 75
    assert table.seconds_per_window == pytest.approx(
        engine_estimate.STATIC_SECONDS_PER_WINDOW[("unet", "cpu", "fp32")] * engine_estimate.OVERHEAD_FACTOR
    )
    engine_estimate.record_seconds_per_window(
        engine_estimate.cache_key("unet", "cpu", "fp32"), 2.0, "last run"
    )
    measured = estimate_for_speed(shape, spacing, "unet", "faithful", device="cpu")
    assert measured.windows == 75
    assert measured.seconds == pytest.approx(75 * 2.0 * engine_estimate.OVERHEAD_FACTOR)
    assert (tmp_path / "speed_probe.json").is_file()
