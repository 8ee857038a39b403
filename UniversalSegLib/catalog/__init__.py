"""The 32-class catalog of the Universal Model: names, colours, terminology, presets and lookups."""

from __future__ import annotations

from .class_info import CATALOG_FILE_NAME, CLASSES, GROUPS, ClassInfo, parse_catalog, read_catalog_text
from .lookup import UnknownClassError, children_of, get_class, groups, normalize_ref, official_class_names
from .presets import PRESETS, resolve_classes, resolve_preset
from .requirements import POSTPROCESS_DEPENDENCIES, postprocess_requirements
from .terminology import Code, Terminology

__all__ = [
    "CATALOG_FILE_NAME",
    "CLASSES",
    "GROUPS",
    "POSTPROCESS_DEPENDENCIES",
    "PRESETS",
    "ClassInfo",
    "Code",
    "Terminology",
    "UnknownClassError",
    "children_of",
    "get_class",
    "groups",
    "normalize_ref",
    "official_class_names",
    "parse_catalog",
    "postprocess_requirements",
    "read_catalog_text",
    "resolve_classes",
    "resolve_preset",
]
