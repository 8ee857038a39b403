"""TensorFloat-32 on CUDA for the length of one run, the previous process-wide settings restored after.

The official code ran with ``torch==1.11.0`` (MODEL_SPEC), whose defaults let cuDNN convolutions and cuBLAS
float32 matrix products use TF32 tensor cores (``torch.backends.cudnn.allow_tf32`` and
``torch.backends.cuda.matmul.allow_tf32`` both ``True``; PyTorch 1.12 turned the second off by default).
``tf32=True`` (the default of every speed mode) sets both flags, which is
``torch.set_float32_matmul_precision("high")`` for the matrix products; ``tf32=False`` clears both (strict
IEEE float32, ``"highest"``); ``None`` leaves the process's settings alone. The flags only change CUDA
kernels: CPU and OpenVINO runs compute the same either way.

The flags are set with the ``allow_tf32`` attributes, which every PyTorch since 1.7 has and which keep
PyTorch's newer per-backend ``fp32_precision`` settings consistent. Where a process already mixed the two
interfaces, so that reading ``allow_tf32`` raises, the ``fp32_precision`` values are kept and restored
instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_NEW_SETTINGS = (("cudnn", "conv"), ("cudnn", "rnn"), ("cuda", "matmul"))


def _backend(torch: Any, backend: str, part: str) -> Any:
    return getattr(getattr(torch.backends, backend), part)


def _saved_settings(torch: Any) -> tuple[str, tuple]:
    """The process's TF32 settings, in the interface they can be read back from."""
    try:
        return "allow_tf32", (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    except RuntimeError:  # the process mixed allow_tf32 with fp32_precision: keep the latter
        return "fp32_precision", tuple(_backend(torch, *name).fp32_precision for name in _NEW_SETTINGS)


def _restore(torch: Any, saved: tuple[str, tuple]) -> None:
    interface, values = saved
    if interface == "allow_tf32":
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = values
        return
    for name, value in zip(_NEW_SETTINGS, values, strict=True):
        _backend(torch, *name).fp32_precision = value


def _set(torch: Any, enabled: bool) -> None:
    torch.backends.cudnn.allow_tf32 = enabled
    torch.backends.cuda.matmul.allow_tf32 = enabled


@contextlib.contextmanager
def tf32_mode(enabled: bool | None) -> Iterator[None]:
    """TF32 for CUDA convolutions and matrix products on (``True``) or off (``False``) inside the block;
    ``None`` changes nothing. The previous settings come back when the block ends, also on an error."""
    if enabled is None:
        yield
        return
    import torch

    saved = _saved_settings(torch)
    _set(torch, enabled)
    try:
        yield
    finally:
        _restore(torch, saved)


def tf32_state() -> str:
    """What CUDA float32 kernels use now: ``"conv+matmul"``, ``"conv"``, ``"matmul"`` or ``"off"`` (TF32).

    Part of the feature cache's key for CUDA runs: TF32 changes the image features.
    """
    import torch

    try:
        convolutions, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    except RuntimeError:  # mixed interfaces: read the per-backend settings
        convolutions = torch.backends.cudnn.conv.fp32_precision == "tf32"
        matmul = torch.backends.cuda.matmul.fp32_precision == "tf32"
    parts = [name for name, on in (("conv", convolutions), ("matmul", matmul)) if on]
    return "+".join(parts) or "off"
