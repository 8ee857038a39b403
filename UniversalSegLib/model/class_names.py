"""The 32 class names of the official release (``ORGAN_NAME`` order, spellings kept)."""

from __future__ import annotations

from UniversalSegLib.catalog import official_class_names
from UniversalSegLib.text.prompts import OFFICIAL_TEMPLATE

#: Official class names; output channel ``c`` is class index ``c + 1`` ("Celiac Truck" spelling kept).
OFFICIAL_CLASS_NAMES: tuple[str, ...] = tuple(official_class_names())


#: Prompt used by the official CLIP embedding script (no trailing period); defined in ``text.prompts``.
OFFICIAL_PROMPT_TEMPLATE = OFFICIAL_TEMPLATE


def default_class_names(num_classes: int) -> list[str]:
    """Official names for the first 32 channels, ``class_<index>`` for any added ones."""
    names = list(OFFICIAL_CLASS_NAMES[:num_classes])
    names += [f"class_{index}" for index in range(len(names) + 1, num_classes + 1)]
    return names
