"""Speed modes: named presets of :class:`InferenceOptions` that trade a measured amount of fidelity for time.

``faithful`` (the default) is the official setting, bit for bit: fp32, overlap 0.5, the MONAI-0.9.0
Gaussian blend, one window per forward pass. The faster modes change only the levers that paid on the
machines we measured (docs/speed.md has the numbers and how they were measured):

============  ==========================================  ==========================================
mode          CPU                                         GPU (CUDA)
============  ==========================================  ==========================================
faithful      fp32, overlap 0.5                           fp32, overlap 0.5
balanced      bf16 autocast, overlap 0.5                  fp16 autocast, overlap 0.5, 4 windows/pass
fast          bf16 autocast, overlap 0                    fp16 autocast, overlap 0.25, 4 windows/pass
============  ==========================================  ==========================================

Measured on a 2-core AVX512-BF16 CPU (docs/speed.md), end to end against ``faithful`` in the same run on a
quiet machine: ``balanced`` 1.4x (swinunetr) and 2.0x (unet), ``fast`` 3.4x (swinunetr) and 4.85x (unet).
Fidelity against ``faithful`` could only be measured with random-init weights (calibrated logits, a
pessimistic proxy): ``balanced`` per-class Dice 0.978-0.992 (swinunetr), 0.917-0.989 (unet); ``fast``
0.75-0.88, nearly all of it from the window positions (fp32 with overlap 0.25 alone gives 0.88), which a
random model is far more sensitive to than a trained one. Re-measure with released weights
(``benchmarks/speed_modes.py --weights``) before relying on ``fast`` for numbers. bf16 autocast only pays on
CPUs with native bf16 (AVX512-BF16/AMX); elsewhere the CPU modes keep fp32 and only the overlap changes (as
on Apple MPS). The GPU presets are not measured yet (benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from .errors import InferenceError
from .options import InferenceOptions

SPEED_MODES: tuple[str, ...] = ("faithful", "balanced", "fast")
DEFAULT_SPEED = "faithful"


@dataclass(frozen=True)
class SpeedPreset:
    """The option values of one speed mode on one kind of device.

    Attributes:
        mode: ``faithful``, ``balanced`` or ``fast``.
        overlap: sliding-window overlap.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast.
        sw_batch_size: windows per forward pass.
        blend: window blending (always the official Gaussian).
        note: the fidelity trade-off, for help texts and logs.
    """

    mode: str
    overlap: float
    precision: str
    sw_batch_size: int
    blend: str = "gaussian"
    note: str = ""


_FAITHFUL_NOTE = "official settings (fp32, overlap 0.5): the published numbers"
_CPU = {
    "faithful": SpeedPreset("faithful", 0.5, "fp32", 1, note=_FAITHFUL_NOTE),
    "balanced": SpeedPreset(
        "balanced", 0.5, "bf16", 1, note="bf16 compute: 1.4-2x on CPU, masks nearly identical"
    ),
    "fast": SpeedPreset(
        "fast",
        0.0,
        "bf16",
        1,
        note="bf16, no window overlap: 3.4-4.9x on CPU, masks change at window borders",
    ),
}
_CPU_WITHOUT_BF16 = {
    "faithful": _CPU["faithful"],
    "balanced": SpeedPreset("balanced", 0.25, "fp32", 1, note="overlap 0.25 (fewer windows)"),
    "fast": SpeedPreset("fast", 0.0, "fp32", 1, note="no window overlap (fewest windows)"),
}
_CUDA = {
    "faithful": _CPU["faithful"],
    "balanced": SpeedPreset("balanced", 0.5, "fp16", 4, note="fp16 compute, 4 windows per pass"),
    "fast": SpeedPreset("fast", 0.25, "fp16", 4, note="fp16, overlap 0.25, 4 windows per pass"),
}
_MPS = _CPU_WITHOUT_BF16


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 natively (oneDNN with AVX512-BF16 or AMX), so bf16 autocast pays."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_speed_mode(mode: str) -> str:
    """``mode`` when it is a known speed mode.

    Raises:
        InferenceError: naming the valid modes.
    """
    if mode not in SPEED_MODES:
        raise InferenceError(f"speed must be one of {', '.join(SPEED_MODES)}, got {mode!r}")
    return mode


def speed_preset(mode: str, device_type: str, cpu_bf16: bool | None = None) -> SpeedPreset:
    """The preset of ``mode`` on a device of type ``device_type`` (``cpu``, ``cuda``, ``mps``).

    Args:
        mode: a name in :data:`SPEED_MODES`.
        device_type: the device the run will use (resolve ``auto`` first).
        cpu_bf16: whether the CPU has native bf16; detected when ``None``.
    """
    check_speed_mode(mode)
    if device_type == "cuda":
        return _CUDA[mode]
    if device_type == "mps":
        return _MPS[mode]
    has_bf16 = cpu_has_fast_bf16() if cpu_bf16 is None else cpu_bf16
    return (_CPU if has_bf16 else _CPU_WITHOUT_BF16)[mode]


def options_for_speed(
    mode: str = DEFAULT_SPEED,
    device: str = "auto",
    *,
    overlap: float | None = None,
    precision: str | None = None,
    sw_batch_size: int | None = None,
    **fields: object,
) -> InferenceOptions:
    """:class:`InferenceOptions` for a speed mode; explicit ``overlap``/``precision``/``sw_batch_size`` win.

    Args:
        mode: ``faithful``, ``balanced`` or ``fast``.
        device: as in :class:`InferenceOptions` (``auto`` is resolved to pick the preset).
        overlap, precision, sw_batch_size: override the preset when not ``None``.
        fields: any other :class:`InferenceOptions` field (``blend``, ``postprocess``, ``roi_size``, ...).
    """
    from .device import resolve_device

    unknown = set(fields) - {f.name for f in dataclasses.fields(InferenceOptions)}
    if unknown:
        raise InferenceError(f"unknown inference option(s): {', '.join(sorted(unknown))}")
    preset = speed_preset(mode, resolve_device(device).type)
    values: dict[str, object] = {
        "overlap": preset.overlap if overlap is None else overlap,
        "precision": preset.precision if precision is None else precision,
        "sw_batch_size": preset.sw_batch_size if sw_batch_size is None else sw_batch_size,
        "blend": preset.blend,
        "device": device,
    }
    values.update(fields)
    return InferenceOptions(**values)
