"""Class names, groups, colours and terminology for the writers, from ``UniversalSegLib.catalog``."""

from __future__ import annotations

from dataclasses import dataclass

from UniversalSegLib.catalog import get_class

#: Groups whose masks win where they overlap other classes (a tumor or cyst inside its organ).
LESION_GROUPS: frozenset[str] = frozenset({"tumor", "cyst"})


@dataclass(frozen=True)
class ClassLabel:
    """What the writers need to know about one class.

    Attributes:
        index: official class index 1..32 (also the labelmap value).
        key: file-name-safe key (``"liver"``).
        name: display name.
        group: organ, vessel, bone, lung, tumor or cyst.
        color: RGB 0..255.
        terminology: Slicer TerminologyEntry string, or None.
    """

    index: int
    key: str
    name: str
    group: str
    color: tuple[int, int, int]
    terminology: str | None = None

    @property
    def is_lesion(self) -> bool:
        return self.group in LESION_GROUPS


def class_label(index: int) -> ClassLabel:
    """Describe class ``index`` from the catalog."""
    info = get_class(int(index))
    return ClassLabel(
        index=int(info.index),
        key=str(info.key),
        name=str(info.display_name),
        group=str(info.group),
        color=tuple(int(c) for c in info.color),
        terminology=info.terminology_entry() or None,
    )


def default_overlap_priority(indices: list[int] | tuple[int, ...]) -> list[int]:
    """Order ``indices`` from highest to lowest precedence where masks overlap.

    Tumors and cysts win over everything, then vessels (e.g. hepatic vessels inside the liver),
    then the other classes; ties go to the lower index.
    """
    rank = {"tumor": 0, "cyst": 0, "vessel": 1}

    def sort_key(index: int) -> tuple[int, int]:
        return rank.get(class_label(index).group, 2), index

    return sorted(set(indices), key=sort_key)
