"""The CLIP-Driven Universal Model (backbones swinunetr and unet, dynamic heads), checkpoint-compatible."""

from __future__ import annotations

from UniversalSegLib.model.class_names import (
    OFFICIAL_CLASS_NAMES,
    OFFICIAL_PROMPT_TEMPLATE,
    default_class_names,
)
from UniversalSegLib.model.swin_backbone import OfficialPatchMerging, SwinUNETRBackbone
from UniversalSegLib.model.unet_backbone import ContBatchNorm3d, UNet3DBackbone
from UniversalSegLib.model.universal_model import BACKBONES, ENCODINGS, UniversalModel, build_backbone

__all__ = [
    "BACKBONES",
    "ENCODINGS",
    "OFFICIAL_CLASS_NAMES",
    "OFFICIAL_PROMPT_TEMPLATE",
    "ContBatchNorm3d",
    "OfficialPatchMerging",
    "SwinUNETRBackbone",
    "UNet3DBackbone",
    "UniversalModel",
    "build_backbone",
    "default_class_names",
]
