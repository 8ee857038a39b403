"""Build the network for a training run: fresh, from backbone-only weights, or fine-tuned from a checkpoint.

New classes named by text only add rows to the ``organ_embedding`` buffer: the dynamic heads are made
by the shared controller from each class's embedding, so they cost no new parameters.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .config import TrainingConfig
from .errors import ConfigError, brief


def load_embedding_file(path: str | Path) -> torch.Tensor:
    """Read class embeddings [N, 512] from the official ``txt_encoding.pth`` (fp16) or a ``.npy`` file."""
    from UniversalSegLib.text import load_official_embeddings

    try:
        return load_official_embeddings(path)
    except (OSError, ValueError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise ConfigError(
            f"model.embeddings: {path} cannot be read as class embeddings ({brief(error)})"
        ) from None


def text_embeddings(names: list[str], prompt_template: str, options: dict[str, Any]) -> torch.Tensor:
    """CLIP text embeddings [N, 512] of class names with the prompt template (``UniversalSegLib.text``).

    ``options`` go to ``compute_text_embeddings`` (e.g. ``pretrained``: a local CLIP weights file).
    """
    from UniversalSegLib.text import compute_text_embeddings

    return compute_text_embeddings(names, template=prompt_template, **options).float().cpu()


def load_backbone_weights(model: torch.nn.Module, path: str | Path) -> int:
    """Copy matching backbone weights (Swin SSL or Models Genesis files) into ``model.backbone``.

    Keys lose a leading ``module.``/``backbone.``; keys containing ``out`` are skipped (the official
    ``load_params`` rule). Returns the number of tensors copied.

    Raises:
        ConfigError: no tensor of the file fits the backbone.
    """
    raw = torch.load(path, map_location="cpu", weights_only=True)
    for container in ("state_dict", "net", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(container), dict):
            raw = raw[container]
            break
    own = model.backbone.state_dict()
    matched = {}
    for key, value in raw.items():
        name = key
        for prefix in ("module.", "backbone."):
            name = name.removeprefix(prefix)
        if "out" in name or name not in own or own[name].shape != value.shape:
            continue
        matched[name] = value
    if not matched:
        raise ConfigError(f"{path}: no tensor fits the {model.backbone_name} backbone (model.init_backbone).")
    model.backbone.load_state_dict(matched, strict=False)
    return len(matched)


def build_training_model(config: TrainingConfig) -> tuple[torch.nn.Module, str]:
    """The model to train and a short description of where its embeddings came from."""
    from UniversalSegLib.model import UniversalModel

    spec = config.model
    names = config.class_table.names
    prompt_names = config.class_table.prompt_names
    model = UniversalModel(spec.backbone, num_classes=len(names), per_sample_norm=spec.per_sample_norm)
    source = "random"
    known = 0
    if spec.init_checkpoint:
        from UniversalSegLib.weights.checkpoint import load_model

        old = load_model(spec.init_checkpoint, backbone=spec.backbone)
        if old.num_classes > len(names):
            raise ConfigError(
                f"{spec.init_checkpoint} has {old.num_classes} classes but the config defines {len(names)}; "
                "list the checkpoint's extra classes under new_classes."
            )
        state = old.state_dict()
        embedding = model.organ_embedding.clone()
        embedding[: old.num_classes] = state.pop("organ_embedding")
        state["organ_embedding"] = embedding
        model.load_state_dict(state, strict=True)
        known, source = old.num_classes, f"checkpoint:{Path(spec.init_checkpoint).name}"
    elif spec.embeddings:
        official = load_embedding_file(spec.embeddings)
        count = min(len(official), len(names))
        model.organ_embedding[:count] = official[:count]
        known, source = count, f"file:{Path(spec.embeddings).name}"
    if known < len(names):
        model.organ_embedding[known:] = text_embeddings(
            prompt_names[known:], config.prompt_template, config.text_encoder
        )
        source += f"+text({config.prompt_template!r})"
    if spec.init_backbone:
        load_backbone_weights(model, spec.init_backbone)
    model.class_names = list(names)
    return model, source
