"""Rough run-time estimate before a CPU run, and a warning for small GPUs.

The engine resamples to 1.5 mm and slides 96-voxel windows; the run time is about
``windows x seconds per window``. The seconds per window default to rough CPU figures per
backbone; :func:`estimate_seconds` accepts a measured value (the hook for a probe run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

TARGET_SPACING_MM = 1.5
ROI_SIZE = 96
#: Rough seconds per 96^3 window on a desktop CPU (measured 11-14 s on 2 cores for Swin UNETR).
CPU_SECONDS_PER_WINDOW: dict[str, float] = {"swinunetr": 6.0, "unet": 3.0}
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
