"""Training checkpoints: the model in UniversalSeg's format (``save_checkpoint``) plus a ``training_state``
entry (optimizer, scheduler, grad scaler, RNG states, epoch and step) for exact resume.

The file loads directly with ``UniversalSegLib.load_model``; the extra entry is ignored there.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError, brief


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy and Python, as tensors and plain data."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached"],
        )
    )
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_checkpoint(
    path: Path, model: torch.nn.Module, training_state: dict[str, Any], **metadata: Any
) -> Path:
    """Write model + training state atomically (our checkpoint format with a ``training_state`` entry)."""
    from UniversalSegLib.weights.checkpoint import checkpoint_payload, save_payload

    payload = checkpoint_payload(model, **metadata)
    payload["training_state"] = training_state
    return save_payload(payload, path, overwrite=True)


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_training_checkpoint`.

    Raises:
        ConfigError: the file cannot be read or has no training state (e.g. a released checkpoint: use
            ``model.init_checkpoint`` to fine-tune from it instead of ``--resume``).
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ConfigError(
            f"{path} cannot be resumed: it is not a UniversalSeg training checkpoint ({brief(error)}); "
            "to start from a released model's weights set model.init_checkpoint in the config."
        ) from None
    if not isinstance(payload, dict) or "training_state" not in payload:
        raise ConfigError(
            f"{path} has no training state, so it cannot be resumed; to start from its weights set "
            "model.init_checkpoint in the config."
        )
    return payload
