"""Named class selections and turning user references into official indices."""

from __future__ import annotations

from collections.abc import Iterable

from .class_info import CLASSES, ClassInfo
from .lookup import UnknownClassError, get_class, normalize_ref

_ORGANS = tuple(c.key for c in CLASSES if c.group in ("organ", "vessel", "bone", "lung"))

#: The 13 organs labelled in BTCV (dataset 01 of the official training set).
_BTCV: tuple[str, ...] = (
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "portal_splenic_vein",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
)

#: Preset name -> class keys.
PRESETS: dict[str, tuple[str, ...]] = {
    "all": tuple(c.key for c in CLASSES),
    "all_organs": _ORGANS,
    "btcv": _BTCV,
    "abdominal_organs": (*_BTCV, "duodenum", "hepatic_vessel", "colon", "small_bowel", "celiac_trunk"),
    "all_tumors": tuple(c.key for c in CLASSES if c.group == "tumor"),
    "all_lesions": tuple(c.key for c in CLASSES if c.group in ("tumor", "cyst")),
    "liver_and_tumor": ("liver", "liver_tumor"),
    "liver_vessels_and_tumors": ("liver", "hepatic_vessel", "liver_tumor", "hepatic_vessel_tumor"),
    "kidneys_and_tumors": ("kidney_right", "kidney_left", "kidney_tumor", "kidney_cyst"),
    "pancreas_and_tumor": ("pancreas", "pancreas_tumor"),
    "lungs_and_tumor": ("lung_right", "lung_left", "lung_tumor"),
    "colon_and_tumor": ("colon", "colon_tumor"),
    "thorax": ("lung_right", "lung_left", "esophagus", "aorta", "lung_tumor"),
    "pelvis": ("rectum", "urinary_bladder", "prostate", "femur_head_left", "femur_head_right"),
}


def resolve_preset(name: str) -> list[int]:
    """Sorted official indices of a preset (name case-insensitive; spaces/hyphens as underscores)."""
    keys = PRESETS.get(normalize_ref(name))
    if keys is None:
        raise KeyError(f"Unknown preset {name!r}. Valid presets: {', '.join(PRESETS)}")
    return sorted({get_class(key).index for key in keys})


def resolve_classes(refs: str | int | ClassInfo | Iterable[str | int | ClassInfo]) -> list[int]:
    """Sorted unique official indices for class references and/or preset names.

    A single string may hold several references separated by commas (``"liver, liver_tumor"``).

    Raises:
        UnknownClassError: a reference is neither a class nor a preset.
    """
    if isinstance(refs, (str, int, ClassInfo)):
        refs = [refs]
    indices: set[int] = set()
    for ref in refs:
        parts = [p for p in ref.split(",") if p.strip()] if isinstance(ref, str) else [ref]
        for part in parts:
            indices.update(_resolve_one(part))
    return sorted(indices)


def _resolve_one(ref: str | int | ClassInfo) -> list[int]:
    try:
        return [get_class(ref).index]
    except UnknownClassError:
        if isinstance(ref, str) and normalize_ref(ref) in PRESETS:
            return resolve_preset(ref)
        raise
