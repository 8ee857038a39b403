"""CLIP text embeddings of class prompts with open_clip (imported only when needed)."""

from __future__ import annotations

import logging
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from UniversalSegLib.text.embedding_cache import EmbeddingCache, weights_identity
from UniversalSegLib.text.prompts import OFFICIAL_TEMPLATE, format_prompts, resolve_template

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "ViT-B-32"
DEFAULT_PRETRAINED = "openai"
WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")


class ClipWeightsError(RuntimeError):
    """The CLIP model or its weights could not be loaded; the message says how to provide them."""


def compute_text_embeddings(
    names: Sequence[str],
    template: str = OFFICIAL_TEMPLATE,
    model_name: str = DEFAULT_MODEL_NAME,
    pretrained: str | os.PathLike | None = DEFAULT_PRETRAINED,
    clip_model: Any | None = None,
    tokenizer: Callable[[list[str]], Tensor] | None = None,
    device: str | torch.device = "cpu",
    *,
    quick_gelu: bool | None = None,
    cache: EmbeddingCache | bool | None = None,
    batch_size: int = 64,
) -> Tensor:
    """Embed ``template.format(name)`` for each name with CLIP's ``encode_text`` (not L2-normalised).

    This reproduces the official ``txt_encoding.pth`` recipe (OpenAI CLIP ViT-B/32, prompt
    ``"A computerized tomography of a {name}"``), computed in float32.

    Args:
        names: class names, e.g. ``["Liver", "Kidney Tumor"]``.
        template: a ``TEMPLATES`` name or a format string containing ``{name}``.
        model_name: open_clip architecture.
        pretrained: open_clip weights tag (``"openai"``), a local weights file, or ``None`` for random
            weights (tests only). With ``clip_model`` given, it only names the weights for the cache.
        clip_model: an already created open_clip model (skips creation).
        tokenizer: its tokenizer (default ``open_clip.get_tokenizer(model_name)``).
        device: where CLIP runs; the result is always on the CPU.
        quick_gelu: use QuickGELU activations, as OpenAI's CLIP does. ``None``: the tag's setting, and
            ``True`` for a local file (assumed to hold OpenAI weights like the official embeddings).
        cache: an ``EmbeddingCache``; ``None`` uses the default cache when the weights are named
            (``pretrained`` not ``None``); ``False`` disables caching.
        batch_size: prompts per ``encode_text`` call.

    Returns:
        float32 tensor ``[len(names), D]`` (D = 512 for ViT-B-32), on the CPU.

    Raises:
        ClipWeightsError: the weights cannot be downloaded or read.
        ImportError: open_clip is not installed.
    """
    names = list(names)
    prompts = format_prompts(names, template)
    template = resolve_template(template)
    store = _resolve_cache(cache, pretrained)
    model_id = f"{model_name}|{weights_identity(pretrained)}|quick_gelu={quick_gelu}"

    rows: list[Tensor | None] = [store.get(model_id, template, n) if store else None for n in names]
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        if clip_model is None:
            clip_model = create_clip_model(model_name, pretrained, device, quick_gelu)
        if tokenizer is None:
            tokenizer = _open_clip().get_tokenizer(model_name)
        computed = _encode(clip_model, tokenizer, [prompts[i] for i in missing], device, batch_size)
        for i, embedding in zip(missing, computed, strict=True):
            rows[i] = embedding
            if store:
                store.put(model_id, template, names[i], embedding)
    logger.debug("Text embeddings: %d from cache, %d computed", len(names) - len(missing), len(missing))
    return torch.stack([row for row in rows if row is not None]).to(torch.float32)


def create_clip_model(
    model_name: str = DEFAULT_MODEL_NAME,
    pretrained: str | os.PathLike | None = DEFAULT_PRETRAINED,
    device: str | torch.device = "cpu",
    quick_gelu: bool | None = None,
) -> Any:
    """Create an open_clip model in eval mode (downloads tagged weights into open_clip's cache).

    Raises:
        ClipWeightsError: the weights cannot be downloaded or read (the message explains the fix).
    """
    open_clip = _open_clip()
    if model_name not in open_clip.list_models():
        raise ClipWeightsError(f"Unknown open_clip model {model_name!r}; e.g. {DEFAULT_MODEL_NAME!r}.")
    local_file = _local_weights_file(pretrained)
    if quick_gelu is None:
        quick_gelu = resolve_quick_gelu(model_name, pretrained)
    if pretrained is None:
        warnings.warn(
            "CLIP is randomly initialised (pretrained=None): embeddings are meaningless.", stacklevel=3
        )
    try:
        if local_file is not None and _is_torchscript_archive(local_file):
            model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=quick_gelu)
            _load_torchscript_weights(model, local_file)
            model = model.to(device)
        else:
            model = open_clip.create_model(
                model_name,
                pretrained=str(local_file) if local_file else pretrained,
                device=device,
                force_quick_gelu=quick_gelu,
            )
    except Exception as error:
        raise ClipWeightsError(_weights_help(open_clip, model_name, pretrained, error)) from error
    return model.eval()


def resolve_quick_gelu(model_name: str, pretrained: str | os.PathLike | None) -> bool:
    """Whether CLIP needs QuickGELU: the weights tag's setting; ``True`` for a local file (OpenAI weights)."""
    if pretrained is None:
        return False
    if _local_weights_file(pretrained) is not None:
        return True
    return bool(_open_clip().get_pretrained_cfg(model_name, str(pretrained)).get("quick_gelu", False))


def _encode(
    clip_model: Any,
    tokenizer: Callable[[list[str]], Tensor],
    prompts: list[str],
    device: str | torch.device,
    batch_size: int,
) -> list[Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    was_training = getattr(clip_model, "training", False)
    clip_model.eval()
    out: list[Tensor] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                tokens = tokenizer(prompts[start : start + batch_size]).to(device)
                out.extend(clip_model.encode_text(tokens).to("cpu", torch.float32))
    finally:
        if was_training:
            clip_model.train()
    return [row.clone() for row in out]


def _is_torchscript_archive(path: Path) -> bool:
    """OpenAI's original ``ViT-B-32.pt`` is a TorchScript archive (a zip with a ``code/`` folder)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())


def _load_torchscript_weights(model: torch.nn.Module, path: Path) -> None:
    """Copy the weights of a TorchScript CLIP archive into ``model``; every model weight must be there."""
    archive_state = torch.jit.load(str(path), map_location="cpu").state_dict()
    expected = model.state_dict()
    missing = [key for key in expected if key not in archive_state]
    if missing:
        raise ValueError(
            f"the archive lacks {len(missing)} weights of {type(model).__name__}, e.g. {missing[:3]}"
        )
    model.load_state_dict({key: archive_state[key] for key in expected}, strict=True)


def _resolve_cache(cache: EmbeddingCache | bool | None, pretrained: object) -> EmbeddingCache | None:
    if isinstance(cache, EmbeddingCache):
        return cache
    if cache is False or (cache is None and pretrained is None):
        return None
    return EmbeddingCache()


def _local_weights_file(pretrained: str | os.PathLike | None) -> Path | None:
    """The weights file ``pretrained`` names, ``None`` for a tag; a missing file raises ClipWeightsError."""
    if pretrained is None:
        return None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return path
    text = str(pretrained)
    if os.sep in text or "/" in text or text.lower().endswith(WEIGHT_FILE_SUFFIXES):
        raise ClipWeightsError(f"CLIP weights file not found: {path}. Give the path of an existing file.")
    return None


def _weights_help(open_clip: Any, model_name: str, pretrained: object, error: Exception) -> str:
    sources = ""
    cfg = open_clip.get_pretrained_cfg(model_name, str(pretrained)) if pretrained else {}
    if cfg:
        links = [
            f"https://huggingface.co/{cfg['hf_hub'].rstrip('/')}" if cfg.get("hf_hub") else "",
            cfg.get("url", ""),
        ]
        sources = " (" + " or ".join(link for link in links if link) + ")"
    return (
        f"Could not load CLIP {model_name} weights {pretrained!r}: {error}\n"
        f"Embedding class names needs the CLIP text encoder. On a computer with internet access, download "
        f"the {model_name} {pretrained} weights file{sources}, copy it here and pass its path as "
        f"pretrained='<path to weights file>'. The official class embeddings need no CLIP: they come with "
        f"the model checkpoint."
    )


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as error:
        raise ImportError(
            "Text embeddings need open_clip: pip install 'universalseg[text]' (open_clip_torch)"
        ) from error
    return open_clip
