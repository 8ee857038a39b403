"""Run-time estimate before a segmentation: windows x seconds per window on this machine.

* Windows: the volume's foreground (voxels above −175 HU, the engine's crop) measured in mm, on the
  1.5 mm grid (or the model's own spacing and intensity window), counted the way MONAI's sliding window
  places them.
* Seconds per window: in order of preference, (1) the last real run's network time per window for the
  same (backbone, device, engine, precision, windows per pass), recorded by :func:`record_run`; (2) a
  probe: two PyTorch forward passes on a 64³ input on this machine, the second timed and scaled by
  (96/64)³ (and divided by OpenVINO's measured speed-up over PyTorch for the OpenVINO engine); (3) a static
  table measured on a 2-core AVX-512 CPU. (1) and (2) are cached in ``<home>/speed_probe.json``, in the
  folder that also holds the weights and the converted models (:mod:`UniversalSegLib.cache_paths`).

Only the standard library is imported at module level, so the Slicer module can read the cache and the
table without torch.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from UniversalSegLib import cache_paths
from UniversalSegLib.io.atomic import atomic_write_text

TARGET_SPACING_MM = 1.5
ROI_SIZE = 96
PROBE_SIZE = 64
HU_FOREGROUND = -175.0
#: Time outside the forward passes (preprocessing, blending, resampling back), as a share of network time.
OVERHEAD_FACTOR = 1.1
CACHE_FILE = cache_paths.SPEED_RATES_FILE

#: Seconds per 96³ window, measured on this project's 2-core AVX-512-BF16 CPU (docs/speed.md) and
#: conservative GPU figures; used when nothing was measured on the user's machine yet.
STATIC_SECONDS_PER_WINDOW: dict[tuple[str, str, str], float] = {
    ("swinunetr", "cpu", "fp32"): 13.0,
    ("swinunetr", "cpu", "bf16"): 6.5,
    ("unet", "cpu", "fp32"): 12.5,
    ("unet", "cpu", "bf16"): 6.3,
    ("swinunetr", "cpu-openvino", "fp32"): 6.2,
    ("swinunetr", "cpu-openvino", "bf16"): 3.0,
    ("unet", "cpu-openvino", "fp32"): 8.7,
    ("unet", "cpu-openvino", "bf16"): 4.2,
    ("swinunetr", "cpu-openvino", "int8"): 1.8,
    ("unet", "cpu-openvino", "int8"): 4.2,  # not measured: bf16's figure as an upper bound
    ("swinunetr", "cuda", "fp32"): 0.25,
    ("swinunetr", "cuda", "fp16"): 0.1,
    ("swinunetr", "cuda", "bf16"): 0.1,
    ("unet", "cuda", "fp32"): 0.25,
    ("unet", "cuda", "fp16"): 0.1,
    ("unet", "cuda", "bf16"): 0.1,
}
DEFAULT_SECONDS_PER_WINDOW = 13.0
#: One 96³ window, OpenVINO vs PyTorch at the same precision on the same CPU (docs/speed.md).
OPENVINO_SPEEDUP: dict[tuple[str, str], float] = {
    ("swinunetr", "fp32"): 2.1,
    ("swinunetr", "bf16"): 3.0,
    ("unet", "fp32"): 1.44,
    ("unet", "bf16"): 1.57,
    ("swinunetr", "int8"): 3.6,  # against PyTorch bf16, which the probe runs for int8
    ("unet", "int8"): 1.57,  # not measured: bf16's figure as a lower bound
}


def rate_device(device_type: str, engine: str = "torch") -> str:
    """The device label rates are kept under: ``cpu-openvino`` for the OpenVINO CPU engine, else the type."""
    return "cpu-openvino" if engine == "openvino" and device_type == "cpu" else device_type


@dataclass(frozen=True)
class RunEstimate:
    """An estimate of one run.

    Attributes:
        windows: sliding windows the run will visit.
        seconds_per_window: network seconds per 96³ window.
        source: where ``seconds_per_window`` comes from (``last run``, ``probe``, ``table``).
        device_type: ``cpu``, ``cuda`` or ``mps``.
    """

    windows: int
    seconds_per_window: float
    source: str
    device_type: str

    @property
    def seconds(self) -> float:
        """End-to-end seconds of the segmentation (network plus the other stages)."""
        return self.windows * self.seconds_per_window * OVERHEAD_FACTOR

    def describe(self) -> str:
        """``about 4 min on CPU (20 windows)``."""
        device = {"cpu": "CPU", "cuda": "GPU", "mps": "GPU (MPS)"}.get(self.device_type, self.device_type)
        return f"about {format_duration(self.seconds)} on {device} ({self.windows} windows)"


def format_duration(seconds: float) -> str:
    """``12 s``, ``4 min``, ``1 h 10 min``: rounded up, the way a user reads an estimate."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def resampled_shape(
    extent_mm: Sequence[float], spacing_mm: Sequence[float] = (TARGET_SPACING_MM,) * 3
) -> tuple[int, ...]:
    """Voxels per axis of an extent in mm on the 1.5 mm grid (or one of ``spacing_mm`` per axis)."""
    return tuple(
        max(1, math.ceil(float(e) / float(s) - 1e-6)) for e, s in zip(extent_mm, spacing_mm, strict=True)
    )


def window_count(shape: Sequence[int], overlap: float, roi_size: int = ROI_SIZE) -> int:
    """Windows MONAI's sliding window visits on a grid of ``shape`` voxels (any axis order)."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    step = max(1, int(roi_size * (1 - overlap)))
    count = 1
    for size in shape:
        size = max(int(size), roi_size)
        count *= 1 if size == roi_size else math.ceil((size - roi_size) / step) + 1
    return count


def foreground_extent_mm(image: object, threshold_hu: float = HU_FOREGROUND) -> tuple[float, float, float]:
    """Extent in mm, per image axis, of the voxels above −175 HU (``threshold_hu``, the lower end of the
    model's intensity window) of a SimpleITK image (whole image if none).

    Cheap (one threshold and three projections); exact for axis-aligned images, an upper bound otherwise.
    """
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    array = sitk.GetArrayViewFromImage(image)  # (z, y, x)
    spacing = image.GetSpacing()
    foreground = array > threshold_hu
    extents = []
    for axis_xyz in range(3):
        axis_zyx = 2 - axis_xyz
        others = tuple(a for a in range(3) if a != axis_zyx)
        present = np.flatnonzero(foreground.any(axis=others))
        voxels = (present[-1] - present[0] + 1) if present.size else array.shape[axis_zyx]
        extents.append(float(voxels) * float(spacing[axis_xyz]))
    return tuple(extents)


def cache_path() -> Path:
    """``<home>/speed_probe.json``: the measured seconds per window."""
    return cache_paths.speed_rates_file()


def cache_key(backbone: str, device_type: str, precision: str, sw_batch_size: int = 1) -> str:
    """Key of a measured rate: backbone, device, precision, windows per pass, and this machine."""
    return f"{backbone}|{device_type}|{precision}|b{sw_batch_size}|{platform.node()}|{os.cpu_count()}"


def _read_cache() -> dict[str, dict]:
    try:
        data = json.loads(cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(data: dict[str, dict]) -> None:
    """Atomic write; a read-only cache folder only costs the next run a probe."""
    path = cache_path()
    try:
        atomic_write_text(path, json.dumps(data, indent=1), overwrite=True)
    except OSError:
        return


def cached_seconds_per_window(key: str) -> tuple[float, str] | None:
    """(seconds per window, source) cached for ``key``, or ``None``."""
    entry = _read_cache().get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("seconds_per_window"), (int, float)):
        return None
    return float(entry["seconds_per_window"]), str(entry.get("source", "cache"))


def record_seconds_per_window(key: str, seconds_per_window: float, source: str) -> None:
    """Remember a measured rate for ``key``."""
    if not seconds_per_window > 0:
        return
    data = _read_cache()
    data[key] = {"seconds_per_window": float(seconds_per_window), "source": source, "time": time.time()}
    _write_cache(data)


def record_run(
    backbone: str,
    device_type: str,
    precision: str,
    sw_batch_size: int,
    network_s: float,
    windows: int,
    engine: str = "torch",
) -> None:
    """Remember the network seconds per window of a finished run (the best estimate for the next one)."""
    if windows > 0:
        key = cache_key(backbone, rate_device(device_type, engine), precision, sw_batch_size)
        record_seconds_per_window(key, network_s / windows, "last run")


def static_seconds_per_window(backbone: str, device_type: str, precision: str) -> float:
    """The table's seconds per window (MPS is counted as a slow GPU: 4x the CUDA figure)."""
    if device_type == "mps":
        return 4 * STATIC_SECONDS_PER_WINDOW.get((backbone, "cuda", precision), 0.25)
    return STATIC_SECONDS_PER_WINDOW.get((backbone, device_type, precision), DEFAULT_SECONDS_PER_WINDOW)


def probe_seconds_per_window(
    model: object, device: object, precision: str, sw_batch_size: int = 1, size: int = PROBE_SIZE
) -> float:
    """Seconds of one forward pass of ``sw_batch_size`` ``size``³ inputs (after a warm-up), per 96³ window."""
    import torch

    from .device import autocast_context

    device = torch.device(device)
    x = torch.rand(sw_batch_size, 1, size, size, size, device=device)
    channel = [0]
    was_training = getattr(model, "training", False)
    if isinstance(model, torch.nn.Module):
        model.eval()
    try:
        with torch.inference_mode(), autocast_context(device, precision):
            model(x, channels=channel)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            model(x, channels=channel)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = time.perf_counter() - start
    finally:
        if isinstance(model, torch.nn.Module):
            model.train(was_training)
    return seconds / sw_batch_size * (ROI_SIZE / size) ** 3


def estimate_run(
    extent_mm: Sequence[float],
    backbone: str,
    device_type: str,
    precision: str,
    overlap: float,
    sw_batch_size: int = 1,
    roi_size: int = ROI_SIZE,
    probe: object | None = None,
    engine: str = "torch",
    spacing_mm: Sequence[float] = (TARGET_SPACING_MM,) * 3,
) -> RunEstimate:
    """Estimate a run from the foreground extent in mm and the run settings.

    Args:
        extent_mm: foreground size in mm per axis (see :func:`foreground_extent_mm`).
        backbone, device_type, precision, overlap, sw_batch_size, roi_size: the run's settings.
        probe: a callable returning PyTorch seconds per window, run (and cached) when nothing is cached
            yet; ``None`` falls back to the static table.
        engine: ``torch`` or ``openvino``.
        spacing_mm: the model grid's spacing per axis (1.5 mm for the released models).
    """
    windows = window_count(resampled_shape(extent_mm, spacing_mm), overlap, roi_size)
    rates_under = rate_device(device_type, engine)
    key = cache_key(backbone, rates_under, precision, sw_batch_size)
    cached = cached_seconds_per_window(key)
    if cached is not None:
        per_window, source = cached
    elif probe is not None:
        per_window, source = float(probe()), "probe"
        if rates_under == "cpu-openvino":
            per_window /= OPENVINO_SPEEDUP.get((backbone, precision), 1.0)
        record_seconds_per_window(key, per_window, source)
    else:
        per_window, source = static_seconds_per_window(backbone, rates_under, precision), "table"
    scale = (roi_size / ROI_SIZE) ** 3
    return RunEstimate(windows, per_window * scale, source, device_type)
