"""Prompt templates that turn class names into CLIP text prompts."""

from __future__ import annotations

from collections.abc import Iterable

#: The official prompt (``pretrained_weights/clip_embedding.py``), without a trailing period.
OFFICIAL_TEMPLATE = "A computerized tomography of a {name}"

#: Selectable templates by short name; any string containing ``{name}`` also works.
TEMPLATES: dict[str, str] = {
    "official": OFFICIAL_TEMPLATE,
    "ct_of_the": "A computerized tomography of the {name}",
    "ct_scan": "A CT scan of the {name}",
    "name_only": "{name}",
}


def resolve_template(template: str) -> str:
    """A template name from ``TEMPLATES`` or a format string with ``{name}`` (or one ``{}``)."""
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{name}" in template:
        return template
    if template.count("{}") == 1:
        return template.replace("{}", "{name}")
    raise ValueError(
        f"Prompt template {template!r} must contain '{{name}}' or be one of: {', '.join(TEMPLATES)}"
    )


def format_prompts(names: Iterable[str], template: str = OFFICIAL_TEMPLATE) -> list[str]:
    """One prompt per class name, e.g. ``"A computerized tomography of a Liver"``."""
    pattern = resolve_template(template)
    prompts = []
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"Class names must be non-empty strings, got {name!r}")
        prompts.append(pattern.replace("{name}", name))
    if not prompts:
        raise ValueError("Give at least one class name to embed")
    return prompts


def official_prompt_names() -> list[str]:
    """The 32 names the official embedding script prompted with (``"Arota"`` and ``"Celiac Truck"`` kept)."""
    from UniversalSegLib.catalog import CLASSES

    return [info.prompt_name for info in CLASSES]
