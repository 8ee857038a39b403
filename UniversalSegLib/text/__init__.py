"""CLIP text embeddings for class prompts; open_clip is imported only when an embedding is computed."""

from __future__ import annotations

from UniversalSegLib.text.clip_embeddings import (
    DEFAULT_MODEL_NAME,
    DEFAULT_PRETRAINED,
    ClipWeightsError,
    compute_text_embeddings,
    create_clip_model,
)
from UniversalSegLib.text.embedding_cache import EmbeddingCache, default_cache_dir
from UniversalSegLib.text.model_embeddings import (
    add_classes_by_text,
    extend_model_classes,
    set_class_embeddings,
)
from UniversalSegLib.text.official import load_official_embeddings
from UniversalSegLib.text.prompts import (
    OFFICIAL_TEMPLATE,
    TEMPLATES,
    format_prompts,
    official_prompt_names,
    resolve_template,
)

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DEFAULT_PRETRAINED",
    "OFFICIAL_TEMPLATE",
    "TEMPLATES",
    "ClipWeightsError",
    "EmbeddingCache",
    "add_classes_by_text",
    "compute_text_embeddings",
    "create_clip_model",
    "default_cache_dir",
    "extend_model_classes",
    "format_prompts",
    "load_official_embeddings",
    "official_prompt_names",
    "resolve_template",
    "set_class_embeddings",
]
