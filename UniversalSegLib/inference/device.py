"""Device choice, autocast precision, and falling back when a device runs out of memory."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch

from .cpu_features import cpu_has_fast_bf16
from .errors import InferenceError

logger = logging.getLogger(__name__)

T = TypeVar("T")

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def mps_available() -> bool:
    """Whether Apple's Metal backend can be used."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; other names are checked for availability.

    Raises:
        InferenceError: when the named device is not available on this machine.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InferenceError("device 'cuda' was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    if device.type == "mps" and not mps_available():
        raise InferenceError("device 'mps' was asked for but Apple MPS is not available; use 'auto' or 'cpu'")
    return device


def autocast_context(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``"bf16"``/``"fp16"``; a no-op for ``"fp32"``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _AUTOCAST_DTYPES:
        raise InferenceError(f"precision must be 'fp32', 'bf16' or 'fp16', got {precision!r}")
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def precision_for_device(precision: str, device: torch.device) -> str:
    """The precision to run on ``device``: fp16 on a CPU becomes bf16 where the CPU has native bf16
    (fp16 has no fast CPU kernels), else fp32. ``int8`` (OpenVINO engine only) is kept on the CPU."""
    if device.type != "cpu" or precision != "fp16":
        return precision
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def autocast_precision(precision: str, device: torch.device) -> str:
    """The autocast precision of the PyTorch part of a run at ``precision``: ``int8`` quantizes only the
    OpenVINO encoder, so PyTorch computes like fp16 asked for on ``device`` (bf16, fp16 or fp32)."""
    return precision_for_device("fp16", device) if precision == "int8" else precision


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an out-of-memory error of CUDA, MPS or the CPU allocator."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


@dataclass(frozen=True)
class Attempt:
    """One way to run the sliding window."""

    device: torch.device
    sw_batch_size: int


def fallback_attempts(device: torch.device, sw_batch_size: int) -> list[Attempt]:
    """What to try, in order: as asked; then one window per batch; then the CPU (from a GPU)."""
    attempts = [Attempt(device, sw_batch_size)]
    if sw_batch_size > 1:
        attempts.append(Attempt(device, 1))
    if device.type != "cpu":
        attempts.append(Attempt(torch.device("cpu"), 1))
    return attempts


def free_device_memory(device: torch.device) -> None:
    """Release cached allocator blocks after an out-of-memory error."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and mps_available():
        torch.mps.empty_cache()


def run_with_oom_fallback(
    run: Callable[[Attempt], T], attempts: list[Attempt], warnings: list[str] | None = None
) -> T:
    """Call ``run(attempt)`` for each attempt until one does not run out of memory.

    Each fallback is logged as a warning and appended to ``warnings``. Errors other than out-of-memory,
    and the out-of-memory error of the last attempt, propagate.
    """
    for number, attempt in enumerate(attempts):
        try:
            return run(attempt)
        except Exception as error:  # noqa: BLE001 - re-raised unless it is an OOM with a fallback left
            if not is_out_of_memory(error) or number == len(attempts) - 1:
                raise
            free_device_memory(attempt.device)
            following = attempts[number + 1]
            message = (
                f"out of memory on {attempt.device} with sw_batch_size={attempt.sw_batch_size}; "
                f"retrying on {following.device} with sw_batch_size={following.sw_batch_size}"
            )
            logger.warning(message)
            if warnings is not None:
                warnings.append(message)
    raise InferenceError("no device to run on")  # only reached with an empty attempt list
