"""Run-time estimate before a CPU run, and a warning for small GPUs.

The engine resamples to 1.5 mm and slides 96-voxel windows; the run time is about
``windows x seconds per window``. Window counting and the table of rates come from the engine's
torch-free estimator (``UniversalSegLib.inference.estimate``). :func:`estimate_for_speed` also uses the rate
measured by the last run or probe on this machine; :func:`estimate_seconds` works before torch is installed.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from UniversalSegLib.inference import estimate as engine_estimate

MIN_GPU_MEMORY_BYTES = 8 * 1024**3


def _extent_mm(dimensions: Sequence[int], spacing: Sequence[float]) -> list[float]:
    return [abs(float(space)) * int(size) for size, space in zip(dimensions, spacing, strict=True)]


def window_count(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    overlap: float = 0.5,
    roi_size: int = engine_estimate.ROI_SIZE,
) -> int:
    """Sliding windows for a volume of ``dimensions`` voxels at ``spacing`` mm (any axis order)."""
    shape = engine_estimate.resampled_shape(_extent_mm(dimensions, spacing))
    return engine_estimate.window_count(shape, overlap, roi_size)


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
    """Estimated fp32 CPU inference time; pass ``seconds_per_window`` from a measured probe when known."""
    if seconds_per_window is None:
        seconds_per_window = engine_estimate.static_seconds_per_window(model, "cpu", "fp32")
    return TimeEstimate(window_count(dimensions, spacing, overlap), seconds_per_window)


def estimate_for_speed(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    model: str = "swinunetr",
    speed: str = "faithful",
    device: str = "cpu",
) -> TimeEstimate:
    """The engine's estimate for a speed mode on ``device`` (``cpu`` or ``auto``), without a probe run.

    Uses the whole volume (the engine also crops to the body, so this errs on the long side) and the rate
    measured on this machine when there is one, else the static table. Before torch is installed (a stock
    Slicer) nothing is imported but the standard library: the run is taken to be on the CPU, with the
    engine the mode will use once its packages are installed.
    """
    from UniversalSegLib.inference.speed import speed_preset

    if torch_installed():
        from UniversalSegLib.inference.device import resolve_device

        device_type = resolve_device(device).type
        preset = speed_preset(speed, device_type)
    else:
        device_type = "cpu"
        preset = speed_preset(speed, "cpu", cpu_bf16=cpu_reports_native_bf16(), openvino=True, nncf=True)
    result = engine_estimate.estimate_run(
        _extent_mm(dimensions, spacing),
        model,
        device_type,
        preset.precision,
        preset.overlap,
        preset.sw_batch_size,
        engine=preset.engine,
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


def torch_installed() -> bool:
    """Whether PyTorch is installed (it is not imported)."""
    return importlib.util.find_spec("torch") is not None


def cpu_reports_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU flags list AVX512-BF16 or AMX-BF16 (Linux); the engine asks PyTorch instead."""
    try:
        flags = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_device() -> tuple[str, int] | None:
    """(name, total memory in bytes) of the first CUDA GPU, or ``None`` (no torch yet, or no GPU)."""
    if not torch_installed():
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    properties = torch.cuda.get_device_properties(0)
    return properties.name, int(properties.total_memory)
