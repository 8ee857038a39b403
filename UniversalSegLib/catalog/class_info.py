"""The 32 official classes, read from ``resources/UniversalSegClasses.csv``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

from .terminology import Terminology

CATALOG_FILE_NAME = "UniversalSegClasses.csv"
GROUPS: tuple[str, ...] = ("organ", "vessel", "bone", "lung", "tumor", "cyst")


@dataclass(frozen=True)
class ClassInfo:
    """One class of the Universal Model.

    Attributes:
        index: official class index 1..32 (model output channel = index - 1).
        key: stable snake_case identifier, e.g. ``"kidney_tumor"``.
        official_name: name in the official ``ORGAN_NAME`` list, spelling kept (``"Celiac Truck"``).
        display_name: clean human-readable name (``"Celiac trunk"``).
        group: one of ``GROUPS``.
        prompt_name: name the official CLIP prompts used (``official_name`` except ``"Arota"`` for aorta).
        parent_keys: organ(s) a tumor/cyst belongs to (empty for anatomy).
        color: recommended display colour (r, g, b), 0-255.
        terminology: DICOM/SNOMED CT codes as used by 3D Slicer.
    """

    index: int
    key: str
    official_name: str
    display_name: str
    group: str
    prompt_name: str
    parent_keys: tuple[str, ...]
    color: tuple[int, int, int]
    terminology: Terminology

    @property
    def channel(self) -> int:
        """0-based model output channel."""
        return self.index - 1

    @property
    def parent_key(self) -> str | None:
        """The first parent organ key (``None`` for anatomy); see ``parent_keys`` for paired organs."""
        return self.parent_keys[0] if self.parent_keys else None

    @property
    def color_float(self) -> tuple[float, float, float]:
        """Colour as floats in [0, 1] (Slicer's segment colour)."""
        return tuple(c / 255.0 for c in self.color)  # type: ignore[return-value]

    def terminology_entry(self) -> str:
        """Slicer ``TerminologyEntry`` tag value for a segment of this class."""
        return self.terminology.to_slicer_entry()


def read_catalog_text() -> str:
    """The shipped catalog CSV as text."""
    return (
        resources.files("UniversalSegLib")
        .joinpath("resources", CATALOG_FILE_NAME)
        .read_text(encoding="utf-8")
    )


def parse_catalog(text: str) -> tuple[ClassInfo, ...]:
    """Parse catalog CSV text (Slicer colour table + our columns) into classes sorted by index."""
    classes = [
        _class_from_row(row, line) for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2)
    ]
    classes.sort(key=lambda c: c.index)
    indices = [c.index for c in classes]
    if indices != list(range(1, len(classes) + 1)):
        raise ValueError(f"Class catalog LabelValues must be 1..N without gaps, got {indices}")
    keys = [c.key for c in classes]
    if len(set(keys)) != len(keys):
        raise ValueError("Class catalog keys must be unique")
    known = set(keys)
    for info in classes:
        missing = [p for p in info.parent_keys if p not in known]
        if missing:
            raise ValueError(f"Class {info.key!r} has unknown parent_key(s) {missing}")
    return tuple(classes)


def _class_from_row(row: dict[str, str], line: int) -> ClassInfo:
    try:
        group = row["group"]
        if group not in GROUPS:
            raise ValueError(f"group {group!r} is not one of {GROUPS}")
        color = (int(row["Color_R"]), int(row["Color_G"]), int(row["Color_B"]))
        if not all(0 <= c <= 255 for c in color):
            raise ValueError(f"colour {color} outside 0..255")
        return ClassInfo(
            index=int(row["LabelValue"]),
            key=row["key"],
            official_name=row["official_name"],
            display_name=row["display_name"],
            group=group,
            prompt_name=row.get("prompt_name") or row["official_name"],
            parent_keys=tuple(p for p in (row.get("parent_key") or "").split("|") if p),
            color=color,
            terminology=Terminology.from_csv_row(row),
        )
    except (KeyError, ValueError) as error:
        raise ValueError(f"Bad class catalog row at line {line}: {error}") from error


CLASSES: tuple[ClassInfo, ...] = parse_catalog(read_catalog_text())
