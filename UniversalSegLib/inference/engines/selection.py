"""Which engine a run uses: the one asked for where it can run, else PyTorch with a warning."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InferenceError
from .base import Engine
from .openvino_engine import OpenVINOEngine
from .torch_engine import TorchEngine

if TYPE_CHECKING:
    import torch

    from ..options import InferenceOptions

_ENGINES: dict[str, Engine] = {engine.name: engine for engine in (TorchEngine(), OpenVINOEngine())}


def engine_named(name: str) -> Engine:
    """The engine called ``name`` (one of :data:`~UniversalSegLib.inference.options.ENGINES`).

    Raises:
        InferenceError: naming the engines there are.
    """
    try:
        return _ENGINES[name]
    except KeyError:
        raise InferenceError(f"engine must be one of {tuple(_ENGINES)}, got {name!r}") from None


def choose_engine(model: Any, options: InferenceOptions, device: torch.device, warnings: list[str]) -> Engine:
    """``options.engine`` where it can run ``model`` on ``device``; else ``torch``, with the reason appended
    to ``warnings``."""
    engine = engine_named(options.engine)
    reason = engine.unavailable_reason(model, device)
    if reason is None:
        return engine
    warnings.append(reason)
    return engine_named("torch")
