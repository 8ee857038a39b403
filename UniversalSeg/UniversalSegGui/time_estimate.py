"""Run-time estimate before a CPU run, and a warning for small GPUs.

The engine resamples to 1.5 mm and slides 96-voxel windows; the run time is about
``windows x seconds per window``. :func:`estimate_for_speed` uses the engine's own estimator
(``UniversalSegLib.inference.estimate``: the speed mode's settings, the seconds per window measured by the
last run or probe on this machine, else its table); :func:`estimate_seconds` is the torch-free fallback.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TARGET_SPACING_MM = 1.5
ROI_SIZE = 96
#: fp32 seconds per 96^3 window measured on a 2-core CPU (docs/speed.md); the fallback without the engine.
CPU_SECONDS_PER_WINDOW: dict[str, float] = {"swinunetr": 13.0, "unet": 12.0}
MIN_GPU_MEMORY_BYTES = 8 * 1024**3


def window_count(
    dimensions: Sequence[int], spacing: Sequence[float], overlap: float = 0.5, roi_size: int = ROI_SIZE
) -> int:
    """Sliding windows for a volume of ``dimensions`` voxels at ``spacing`` mm (any axis order)."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    step = max(1, int(roi_size * (1 - overlap)))
    count = 1
    for size, space in zip(dimensions, spacing, strict=True):
        resampled = max(1, math.ceil(size * abs(space) / TARGET_SPACING_MM))
        count *= 1 if resampled <= roi_size else math.ceil((resampled - roi_size) / step) + 1
    return count


@dataclass(frozen=True)
class TimeEstimate:
    windows: int
    seconds_per_window: float

    @property
    def seconds(self) -> float:
        return self.windows * self.seconds_per_window


def estimate_seconds(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    model: str = "swinunetr",
    overlap: float = 0.5,
    seconds_per_window: float | None = None,
) -> TimeEstimate:
    """Estimated CPU inference time; pass ``seconds_per_window`` from a measured probe when known."""
    per_window = (
        seconds_per_window if seconds_per_window is not None else CPU_SECONDS_PER_WINDOW.get(model, 6.0)
    )
    return TimeEstimate(window_count(dimensions, spacing, overlap), per_window)


def estimate_for_speed(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    model: str = "swinunetr",
    speed: str = "faithful",
    device: str = "cpu",
) -> TimeEstimate:
    """The engine's estimate for a speed mode on ``device`` (``cpu`` or ``auto``), without a probe run.

    Uses the whole volume (the engine also crops to the body, so this errs on the long side). Falls
    back to :func:`estimate_seconds` with the mode's CPU overlap when the engine cannot be imported
    (torch not installed yet).
    """
    try:
        from UniversalSegLib.inference import estimate
        from UniversalSegLib.inference.device import resolve_device
        from UniversalSegLib.inference.speed import speed_preset
    except ImportError:
        overlap = {"faithful": 0.5, "balanced": 0.5, "fast": 0.0}.get(speed, 0.5)
        return estimate_seconds(dimensions, spacing, model, overlap)
    device_type = resolve_device(device).type
    preset = speed_preset(speed, device_type)
    extent = [abs(float(space)) * int(size) for size, space in zip(dimensions, spacing, strict=True)]
    result = estimate.estimate_run(
        extent, model, device_type, preset.precision, preset.overlap, preset.sw_batch_size
    )
    return TimeEstimate(result.windows, result.seconds / max(result.windows, 1))


def gpu_memory_warning(total_bytes: int | None, name: str = "GPU") -> str:
    """A warning when the GPU has less than 8 GB (empty when fine or unknown)."""
    if total_bytes is None or total_bytes >= MIN_GPU_MEMORY_BYTES:
        return ""
    return (
        f"{name} has {total_bytes / 1024**3:.1f} GB of memory; 8 GB or more is recommended. "
        "If the run fails for lack of memory, choose 'CPU' as device."
    )


def cuda_device() -> tuple[str, int] | None:
    """(name, total memory in bytes) of the first CUDA GPU, or ``None`` (no torch or no GPU)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    properties = torch.cuda.get_device_properties(0)
    return properties.name, int(properties.total_memory)
