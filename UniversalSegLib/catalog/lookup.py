"""Find classes by key, name or index."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from .class_info import CLASSES, GROUPS, ClassInfo


class UnknownClassError(ValueError):
    """A class reference that matches no class; the message lists the valid keys and close matches."""

    def __init__(self, ref: object, candidates: Iterable[str] = ()) -> None:
        self.ref = ref
        self.suggestions = tuple(
            difflib.get_close_matches(normalize_ref(str(ref)), list(candidates), n=3, cutoff=0.6)
        )
        hint = f" Did you mean: {', '.join(self.suggestions)}?" if self.suggestions else ""
        valid = ", ".join(c.key for c in CLASSES)
        super().__init__(
            f"Unknown class {ref!r}.{hint} Use a key, display name, official name or index 1-{len(CLASSES)}. "
            f"Valid keys: {valid}"
        )


def normalize_ref(ref: str) -> str:
    """Lower-case; spaces, hyphens and underscores become one underscore."""
    return re.sub(r"[\s_\-]+", "_", ref.strip().lower())


def _build_index() -> dict[str, ClassInfo]:
    by_name: dict[str, ClassInfo] = {}
    for info in CLASSES:
        for name in (info.key, info.display_name, info.official_name, info.prompt_name):
            by_name.setdefault(normalize_ref(name), info)
    return by_name


_BY_NAME = _build_index()


def get_class(ref: str | int | ClassInfo) -> ClassInfo:
    """Find a class by key, display/official/prompt name (case-insensitive) or index (int or numeric string).

    Raises:
        UnknownClassError: no class matches ``ref``.
    """
    if isinstance(ref, ClassInfo):
        return ref
    if isinstance(ref, bool):
        raise UnknownClassError(ref)
    if isinstance(ref, int):
        if 1 <= ref <= len(CLASSES):
            return CLASSES[ref - 1]
        raise UnknownClassError(ref)
    if not isinstance(ref, str):
        raise TypeError(f"A class reference must be a str or int, got {type(ref).__name__}")
    text = ref.strip()
    if text.isdigit():
        return get_class(int(text))
    info = _BY_NAME.get(normalize_ref(text))
    if info is None:
        raise UnknownClassError(ref, _BY_NAME)
    return info


def groups() -> dict[str, tuple[ClassInfo, ...]]:
    """Group name -> classes of that group, in index order."""
    return {group: tuple(c for c in CLASSES if c.group == group) for group in GROUPS}


def official_class_names() -> list[str]:
    """The official ``ORGAN_NAME`` list (index order, spelling kept)."""
    return [c.official_name for c in CLASSES]


def children_of(ref: str | int | ClassInfo) -> tuple[ClassInfo, ...]:
    """Tumors/cysts whose parent is the given class."""
    key = get_class(ref).key
    return tuple(c for c in CLASSES if key in c.parent_keys)
