"""Speed modes: named presets of :class:`InferenceOptions` that trade a measured amount of fidelity for time.

``faithful`` (the default) is the official setting, bit for bit: PyTorch, fp32, overlap 0.5, the MONAI-0.9.0
Gaussian blend, one window per forward pass. The faster modes change only the levers that paid on the
machines we measured (docs/speed.md has the numbers and how they were measured):

============  ============================================  ==========================================
mode          CPU with native bf16 (OpenVINO and NNCF       GPU (CUDA)
              installed; Slicer: on first use)
============  ============================================  ==========================================
faithful      PyTorch fp32, overlap 0.5                     PyTorch fp32, overlap 0.5
balanced      OpenVINO bf16, overlap 0.5                    fp16 autocast, overlap 0.5, 4 windows/pass
fast          OpenVINO int8 (quantized once), overlap 0.5   fp16 autocast, overlap 0.25, 4 windows/pass
============  ============================================  ==========================================

On CPUs without native bf16 (AVX512-BF16/AMX), where bf16 is emulated and slower, ``balanced`` is OpenVINO
fp32 and ``fast`` OpenVINO fp32 with overlap 0.25 (int8 is not measured there). Without NNCF, ``fast`` is
``balanced``. Without OpenVINO the CPU modes fall back to PyTorch: ``balanced`` bf16 autocast (or fp32 with
overlap 0.25 on CPUs without native bf16), ``fast`` the same with overlap 0. Apple MPS uses the PyTorch
CPU-without-bf16 presets.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..run_choices import DEFAULT_SPEED, SPEED_MODES
from .cpu_features import cpu_has_fast_bf16
from .errors import InferenceError, optional_package_installed
from .options import InferenceOptions


@dataclass(frozen=True)
class SpeedPreset:
    """The option values of one speed mode on one kind of device.

    Attributes:
        mode: ``faithful``, ``balanced`` or ``fast``.
        overlap: sliding-window overlap.
        precision: ``fp32``, ``bf16`` or ``fp16`` autocast.
        sw_batch_size: windows per forward pass.
        blend: window blending (always the official Gaussian).
        engine: ``torch`` or ``openvino`` (CPU only).
        note: the fidelity trade-off, for help texts and logs.
    """

    mode: str
    overlap: float
    precision: str
    sw_batch_size: int
    blend: str = "gaussian"
    engine: str = "torch"
    note: str = ""


_FAITHFUL_NOTE = "official settings (PyTorch fp32, overlap 0.5): the published numbers"
_FAITHFUL = SpeedPreset("faithful", 0.5, "fp32", 1, note=_FAITHFUL_NOTE)
_OPENVINO_FP32 = SpeedPreset(
    "balanced",
    0.5,
    "fp32",
    1,
    engine="openvino",
    note="OpenVINO fp32 on the CPU: about 2x, masks equal to faithful up to float rounding",
)
_OPENVINO_BF16 = SpeedPreset(
    "balanced",
    0.5,
    "bf16",
    1,
    engine="openvino",
    note="OpenVINO bf16 on the CPU: about 4x, masks nearly identical to faithful",
)
_CPU_OPENVINO = {
    "faithful": _FAITHFUL,
    "balanced": _OPENVINO_BF16,
    "fast": SpeedPreset(
        "fast",
        0.5,
        "int8",
        1,
        engine="openvino",
        note="OpenVINO int8 on the CPU (the model is quantized once): about 5x, organ borders may shift by "
        "a voxel",
    ),
}
_CPU_OPENVINO_WITHOUT_NNCF = {
    **_CPU_OPENVINO,
    "fast": dataclasses.replace(_OPENVINO_BF16, mode="fast", note=_OPENVINO_BF16.note + " (int8 needs NNCF)"),
}
_CPU_OPENVINO_WITHOUT_BF16 = {
    "faithful": _FAITHFUL,
    "balanced": _OPENVINO_FP32,
    "fast": SpeedPreset(
        "fast", 0.25, "fp32", 1, engine="openvino", note="OpenVINO fp32, overlap 0.25 (fewer windows)"
    ),
}
_CPU_TORCH = {
    "faithful": _FAITHFUL,
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
_CPU_TORCH_WITHOUT_BF16 = {
    "faithful": _FAITHFUL,
    "balanced": SpeedPreset("balanced", 0.25, "fp32", 1, note="overlap 0.25 (fewer windows)"),
    "fast": SpeedPreset("fast", 0.0, "fp32", 1, note="no window overlap (fewest windows)"),
}
_CUDA = {
    "faithful": _FAITHFUL,
    "balanced": SpeedPreset("balanced", 0.5, "fp16", 4, note="fp16 compute, 4 windows per pass"),
    "fast": SpeedPreset("fast", 0.25, "fp16", 4, note="fp16, overlap 0.25, 4 windows per pass"),
}
_MPS = _CPU_TORCH_WITHOUT_BF16


def check_speed_mode(mode: str) -> str:
    """``mode`` when it is a known speed mode.

    Raises:
        InferenceError: naming the valid modes.
    """
    if mode not in SPEED_MODES:
        raise InferenceError(f"speed must be one of {', '.join(SPEED_MODES)}, got {mode!r}")
    return mode


def speed_preset(
    mode: str,
    device_type: str,
    cpu_bf16: bool | None = None,
    openvino: bool | None = None,
    nncf: bool | None = None,
) -> SpeedPreset:
    """The preset of ``mode`` on a device of type ``device_type`` (``cpu``, ``cuda``, ``mps``).

    Args:
        mode: a name in :data:`SPEED_MODES`.
        device_type: the device the run will use (resolve ``auto`` first).
        cpu_bf16: whether the CPU has native bf16; detected when ``None``.
        openvino: whether the OpenVINO runtime is installed; detected when ``None``.
        nncf: whether NNCF (which quantizes the model for ``fast``) is installed; detected when ``None``.
    """
    check_speed_mode(mode)
    if device_type == "cuda":
        return _CUDA[mode]
    if device_type == "mps":
        return _MPS[mode]
    has_bf16 = cpu_has_fast_bf16() if cpu_bf16 is None else cpu_bf16
    if openvino is None:
        openvino = optional_package_installed("openvino")
    if openvino and not has_bf16:
        return _CPU_OPENVINO_WITHOUT_BF16[mode]
    if openvino:
        if nncf is None:
            nncf = optional_package_installed("nncf")
        return (_CPU_OPENVINO if nncf else _CPU_OPENVINO_WITHOUT_NNCF)[mode]
    return (_CPU_TORCH if has_bf16 else _CPU_TORCH_WITHOUT_BF16)[mode]


def options_for_speed(
    mode: str = DEFAULT_SPEED,
    device: str = "auto",
    *,
    overlap: float | None = None,
    precision: str | None = None,
    sw_batch_size: int | None = None,
    engine: str | None = None,
    **fields: object,
) -> InferenceOptions:
    """:class:`InferenceOptions` for a speed mode; explicit ``overlap``/``precision``/``sw_batch_size`` win.

    Args:
        mode: ``faithful``, ``balanced`` or ``fast``.
        device: as in :class:`InferenceOptions` (``auto`` is resolved to pick the preset).
        overlap, precision, sw_batch_size, engine: override the preset when not ``None``.
        fields: any other :class:`InferenceOptions` field (``blend``, ``postprocess``, ``roi_size``, ...).
    """
    from .device import resolve_device  # imports torch: not needed to read the presets

    unknown = set(fields) - {f.name for f in dataclasses.fields(InferenceOptions)}
    if unknown:
        raise InferenceError(f"unknown inference option(s): {', '.join(sorted(unknown))}")
    preset = speed_preset(mode, resolve_device(device).type)
    values: dict[str, object] = {
        "overlap": preset.overlap if overlap is None else overlap,
        "precision": preset.precision if precision is None else precision,
        "sw_batch_size": preset.sw_batch_size if sw_batch_size is None else sw_batch_size,
        "blend": preset.blend,
        "engine": preset.engine if engine is None else engine,
        "device": device,
    }
    values.update(fields)
    return InferenceOptions(**values)
