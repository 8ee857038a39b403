"""Write text embeddings into a Universal Model's ``organ_embedding`` and add classes by text."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn


def _embedding_buffer(model: nn.Module) -> Tensor:
    buffer = getattr(model, "organ_embedding", None)
    if not isinstance(buffer, Tensor) or isinstance(buffer, nn.Parameter) or buffer.dim() != 2:
        raise ValueError(
            "The model has no text-embedding buffer 'organ_embedding' [N, 512]; text embeddings need a model "
            "built with encoding='word_embedding' (rand_embedding models learn their class vectors)."
        )
    return buffer


def _as_rows(embeddings: Tensor, width: int) -> Tensor:
    rows = torch.as_tensor(embeddings)
    if rows.dim() == 1:
        rows = rows.unsqueeze(0)
    if rows.dim() != 2 or rows.shape[1] != width:
        raise ValueError(f"Embeddings must have shape [K, {width}] (or [{width}]), got {tuple(rows.shape)}")
    if not torch.isfinite(rows).all():
        raise ValueError("Embeddings contain NaN or infinite values")
    return rows


def set_class_embeddings(
    model: nn.Module,
    embeddings: Tensor,
    channels: Sequence[int] | None = None,
    names: Sequence[str] | None = None,
) -> nn.Module:
    """Overwrite rows of ``model.organ_embedding`` in place and return the model.

    Args:
        model: a word_embedding Universal Model (anything with an ``organ_embedding`` buffer [N, D]).
        embeddings: ``[K, D]`` rows (``[D]`` for one).
        channels: the K 0-based output channels to overwrite; ``None`` means all N rows (K must equal N).
        names: optional new ``model.class_names`` entries for those channels.
    """
    buffer = _embedding_buffer(model)
    rows = _as_rows(embeddings, buffer.shape[1])
    if channels is None:
        if rows.shape[0] != buffer.shape[0]:
            raise ValueError(
                f"Got {rows.shape[0]} embeddings for a model with {buffer.shape[0]} classes; "
                "pass channels=[...] to replace only some classes."
            )
        index = list(range(buffer.shape[0]))
    else:
        index = [int(c) for c in channels]
        if len(index) != rows.shape[0]:
            raise ValueError(f"{len(index)} channels given for {rows.shape[0]} embeddings")
        if len(set(index)) != len(index) or any(not 0 <= c < buffer.shape[0] for c in index):
            raise ValueError(
                f"channels must be distinct 0-based channels in [0, {buffer.shape[0] - 1}], got {index}"
            )
    if names is not None and len(names) != len(index):
        raise ValueError(f"{len(names)} names given for {len(index)} channels")
    with torch.no_grad():
        buffer[index] = rows.to(device=buffer.device, dtype=buffer.dtype)
    if names is not None:
        class_names = list(getattr(model, "class_names", [f"class_{i + 1}" for i in range(buffer.shape[0])]))
        for channel, name in zip(index, names, strict=True):
            class_names[channel] = name
        model.class_names = class_names
    return model


def extend_model_classes(model: nn.Module, new_names: Sequence[str], new_embeddings: Tensor) -> nn.Module:
    """A copy of ``model`` with classes added at the end (channels N..N+K-1); ``model`` is unchanged.

    All heads are shared across classes, so a new class only needs its text embedding.

    Raises:
        ValueError: names and embeddings differ in number, a name repeats an existing class name,
            or the model has no text-embedding buffer.
    """
    buffer = _embedding_buffer(model)
    rows = _as_rows(new_embeddings, buffer.shape[1])
    new_names = [str(n) for n in new_names]
    if len(new_names) != rows.shape[0]:
        raise ValueError(f"{len(new_names)} names given for {rows.shape[0]} embeddings")
    old_names = list(getattr(model, "class_names", [f"class_{i + 1}" for i in range(buffer.shape[0])]))
    clashes = sorted({n.lower() for n in new_names} & {n.lower() for n in old_names})
    if clashes or len({n.lower() for n in new_names}) != len(new_names):
        raise ValueError(
            f"New class names must be unique and not already in the model: {clashes or new_names}"
        )
    extended = copy.deepcopy(model)
    grown = torch.cat([buffer, rows.to(device=buffer.device, dtype=buffer.dtype)], dim=0)
    extended.register_buffer("organ_embedding", grown, persistent=True)
    extended.num_classes = grown.shape[0]
    extended.class_names = old_names + new_names
    return extended


def add_classes_by_text(model: nn.Module, names: Sequence[str], **clip_options: Any) -> nn.Module:
    """Embed ``names`` with CLIP and return an extended copy of ``model``.

    ``clip_options`` are passed to ``compute_text_embeddings`` (template, model_name, pretrained, ...).
    """
    from UniversalSegLib.text.clip_embeddings import compute_text_embeddings

    return extend_model_classes(model, names, compute_text_embeddings(names, **clip_options))
