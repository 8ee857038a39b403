"""The 32 class names of the official release (``ORGAN_NAME`` order, spellings kept)."""

from __future__ import annotations

#: Official class names; output channel ``c`` is class index ``c + 1`` ("Celiac Truck" spelling kept).
OFFICIAL_CLASS_NAMES: tuple[str, ...] = (
    "Spleen",
    "Right Kidney",
    "Left Kidney",
    "Gall Bladder",
    "Esophagus",
    "Liver",
    "Stomach",
    "Aorta",
    "Postcava",
    "Portal Vein and Splenic Vein",
    "Pancreas",
    "Right Adrenal Gland",
    "Left Adrenal Gland",
    "Duodenum",
    "Hepatic Vessel",
    "Right Lung",
    "Left Lung",
    "Colon",
    "Intestine",
    "Rectum",
    "Bladder",
    "Prostate",
    "Left Head of Femur",
    "Right Head of Femur",
    "Celiac Truck",
    "Kidney Tumor",
    "Liver Tumor",
    "Pancreas Tumor",
    "Hepatic Vessel Tumor",
    "Lung Tumor",
    "Colon Tumor",
    "Kidney Cyst",
)

#: Prompt used by the official CLIP embedding script (no trailing period).
OFFICIAL_PROMPT_TEMPLATE = "A computerized tomography of a {}"


def default_class_names(num_classes: int) -> list[str]:
    """Official names for the first 32 channels, ``class_<index>`` for any added ones."""
    names = list(OFFICIAL_CLASS_NAMES[:num_classes])
    names += [f"class_{index}" for index in range(len(names) + 1, num_classes + 1)]
    return names
