"""The class table of a training run: the 32 official classes plus new classes named by text."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class TrainClass:
    """One output class: official index (1-based), key and the name used in the CLIP prompt."""

    index: int
    key: str
    name: str
    official: bool
    prompt_name: str = ""  # the name put in the CLIP prompt (official spellings, e.g. "Arota")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


class ClassTable:
    """Ordered classes; output channel = index - 1. New classes get indices after the official 32."""

    def __init__(self, classes: list[TrainClass]) -> None:
        self._classes = list(classes)

    @classmethod
    def official(cls) -> ClassTable:
        from UniversalSegLib.catalog import CLASSES

        return cls([TrainClass(c.index, c.key, c.official_name, True, c.prompt_name) for c in CLASSES])

    def __len__(self) -> int:
        return len(self._classes)

    def __iter__(self):
        return iter(self._classes)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self._classes]

    @property
    def prompt_names(self) -> list[str]:
        return [c.prompt_name or c.name for c in self._classes]

    @property
    def new_classes(self) -> list[TrainClass]:
        return [c for c in self._classes if not c.official]

    def add(self, name: str, key: str | None = None) -> TrainClass:
        """Append a new class named by text (its embedding comes from the CLIP text encoder)."""
        key = key or _slug(name)
        if any(c.key == key or c.name.lower() == name.lower() for c in self._classes):
            raise ValueError(f"New class {name!r} (key {key!r}) clashes with an existing class.")
        item = TrainClass(len(self._classes) + 1, key, name, False)
        self._classes.append(item)
        return item

    def resolve_key(self, index: int) -> str:
        """The key of the class with 1-based ``index``."""
        return self._classes[index - 1].key

    def resolve(self, ref: str | int) -> int:
        """Return the 1-based index of a class given by index, key or name.

        Raises:
            ValueError: the reference names no class of this table.
        """
        if isinstance(ref, bool):
            raise ValueError(f"Invalid class reference {ref!r}.")
        if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
            index = int(ref)
            if not 1 <= index <= len(self._classes):
                raise ValueError(f"Class index {index} is outside 1..{len(self._classes)}.")
            return index
        text = str(ref).strip().lower()
        for item in self._classes:
            if text in (item.key.lower(), item.name.lower()):
                return item.index
        from UniversalSegLib.catalog import get_class

        return get_class(ref).index
