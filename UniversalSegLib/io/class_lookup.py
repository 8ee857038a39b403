"""Class names, groups, colours and terminology for the writers, from ``UniversalSegLib.catalog``.

Falls back to a built-in minimal table (official names, index-based groups) when the catalog
package is not importable, so the writers also work on their own.
"""

from __future__ import annotations

import colorsys
import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

#: Groups whose masks win where they overlap other classes (a tumor or cyst inside its organ).
LESION_GROUPS: frozenset[str] = frozenset({"tumor", "cyst"})

_OFFICIAL_NAMES: tuple[str, ...] = (
    "Spleen", "Right Kidney", "Left Kidney", "Gall Bladder", "Esophagus", "Liver", "Stomach", "Aorta",
    "Postcava", "Portal Vein and Splenic Vein", "Pancreas", "Right Adrenal Gland", "Left Adrenal Gland",
    "Duodenum", "Hepatic Vessel", "Right Lung", "Left Lung", "Colon", "Intestine", "Rectum", "Bladder",
    "Prostate", "Left Head of Femur", "Right Head of Femur", "Celiac Truck", "Kidney Tumor", "Liver Tumor",
    "Pancreas Tumor", "Hepatic Vessel Tumor", "Lung Tumor", "Colon Tumor", "Kidney Cyst",
)  # fmt: skip
_FALLBACK_VESSELS: frozenset[int] = frozenset({8, 9, 10, 15, 25})
_FALLBACK_CYSTS: frozenset[int] = frozenset({32})
_FALLBACK_TUMORS: frozenset[int] = frozenset(range(26, 32))
_TERMINOLOGY_METHOD = "terminology_entry"  # ClassInfo.terminology_entry() -> Slicer TerminologyEntry string


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
    """Describe class ``index`` from the catalog if available, else from the built-in table."""
    try:
        from UniversalSegLib.catalog import get_class
    except ImportError:
        return _fallback_label(index)
    info = get_class(int(index))
    return ClassLabel(
        index=int(info.index),
        key=str(info.key),
        name=str(info.display_name),
        group=str(info.group),
        color=tuple(int(c) for c in info.color),
        terminology=_terminology_of(info),
    )


def _terminology_of(info: object) -> str | None:
    method = getattr(info, _TERMINOLOGY_METHOD, None)
    value = method() if callable(method) else None
    return value if isinstance(value, str) and value else None


def _fallback_label(index: int) -> ClassLabel:
    index = int(index)
    if not 1 <= index <= len(_OFFICIAL_NAMES):
        raise ValueError(f"Class index {index} is out of range; valid indices are 1..{len(_OFFICIAL_NAMES)}.")
    name = _OFFICIAL_NAMES[index - 1]
    if index in _FALLBACK_CYSTS:
        group = "cyst"
    elif index in _FALLBACK_TUMORS:
        group = "tumor"
    elif index in _FALLBACK_VESSELS:
        group = "vessel"
    else:
        group = "organ"
    hue = (index * 0.618034) % 1.0
    color = tuple(round(255 * c) for c in colorsys.hsv_to_rgb(hue, 0.65, 0.9))
    return ClassLabel(index, name.lower().replace(" ", "_"), name, group, color)


def default_overlap_priority(indices: list[int] | tuple[int, ...]) -> list[int]:
    """Order ``indices`` from highest to lowest precedence where masks overlap.

    Tumors and cysts win over everything, then vessels (e.g. hepatic vessels inside the liver),
    then the other classes; ties go to the lower index.
    """
    rank = {"tumor": 0, "cyst": 0, "vessel": 1}

    def sort_key(index: int) -> tuple[int, int]:
        return rank.get(class_label(index).group, 2), index

    return sorted(set(indices), key=sort_key)
