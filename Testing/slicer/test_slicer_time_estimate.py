"""CPU time estimate from the volume size, and the small-GPU warning."""

from __future__ import annotations

import pytest
from UniversalSegGui.time_estimate import (
    MIN_GPU_MEMORY_BYTES,
    estimate_seconds,
    gpu_memory_warning,
    window_count,
)


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
