"""Training and validation transforms (MONAI dictionary transforms, official recipe of MODEL_SPEC §5).

Prepared cases are already in RAS at the training spacing (``training.prepare`` ran Orientation and
Spacing), so the chain starts at intensity scaling. Keys: ``image`` [1,X,Y,Z] float32, ``target``
[C,X,Y,Z] uint8 (255 = not annotated), ``annotated`` [C] bool.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    DeleteItemsd,
    MapTransform,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandRotate90d,
    RandShiftIntensityd,
    RandZoomd,
    ScaleIntensityRanged,
    SpatialPadd,
    Transform,
)

from .config import DatasetSpec, DataSpec

KEYS = ("image", "target")


class LoadPreparedd(Transform):
    """Read a prepared ``.npz`` case into ``image``, ``target`` and ``annotated`` tensors."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        with np.load(data["path"]) as arrays:
            out["image"] = torch.from_numpy(arrays["image"][None].astype(np.float32))
            out["target"] = torch.from_numpy(arrays["target"])
        annotated = torch.zeros(out["target"].shape[0], dtype=torch.bool)
        annotated[[c - 1 for c in data["classes"]]] = True
        out["annotated"] = annotated
        return out


class CropLabeld(MapTransform):
    """Build the single-channel label that guides cropping.

    ``pos_neg``: foreground = any annotated class present. ``label_classes``: label ``i + 1`` where
    the i-th listed class is present (later classes win, so a tumor overrides its organ).
    """

    def __init__(self, spec: DatasetSpec, output_key: str = "crop_label") -> None:
        super().__init__(keys=["target"])
        self.spec = spec
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        out = dict(data)
        target = torch.as_tensor(out["target"])
        if self.spec.crop.mode == "label_classes":
            label = torch.zeros_like(target[:1])
            for number, index in enumerate(self.spec.crop.classes, 1):
                label[target[index - 1 : index] == 1] = number
        else:
            channels = [c - 1 for c in self.spec.classes]
            label = (target[channels] == 1).any(0, keepdim=True).to(torch.uint8)
        out[self.output_key] = label
        return out


def deterministic_transforms(data: DataSpec, spec: DatasetSpec) -> list:
    """The cacheable prefix: load, scale intensity, crop to the body, pad to the roi, crop label."""
    roi = (data.roi_size,) * 3
    return [
        LoadPreparedd(),
        ScaleIntensityRanged(
            keys="image", a_min=data.a_min, a_max=data.a_max, b_min=0.0, b_max=1.0, clip=True
        ),
        CropForegroundd(keys=list(KEYS), source_key="image", allow_smaller=True),
        SpatialPadd(keys=list(KEYS), spatial_size=roi, mode="constant"),
        CropLabeld(spec),
    ]


def random_transforms(data: DataSpec, spec: DatasetSpec) -> list:
    """The random part: zoom (MSD datasets), crops, 90-degree rotations, intensity shift."""
    roi = (data.roi_size,) * 3
    steps: list = []
    if spec.rand_zoom:
        steps.append(
            RandZoomd(
                keys=[*KEYS, "crop_label"],
                prob=0.3,
                min_zoom=1.3,
                max_zoom=1.5,
                mode=["area", "nearest", "nearest"],
            )
        )
    if spec.crop.mode == "label_classes":
        steps.append(
            RandCropByLabelClassesd(
                keys=[*KEYS, "crop_label"],
                label_key="crop_label",
                spatial_size=roi,
                ratios=list(spec.crop.ratios),
                num_classes=len(spec.crop.classes) + 1,
                num_samples=data.num_samples,
                image_key="image",
                image_threshold=0,
                warn=False,
            )
        )
    else:
        steps.append(
            RandCropByPosNegLabeld(
                keys=[*KEYS, "crop_label"],
                label_key="crop_label",
                spatial_size=roi,
                pos=spec.crop.pos,
                neg=spec.crop.neg,
                num_samples=data.num_samples,
                image_key="image",
                image_threshold=0,
            )
        )
    steps += [
        DeleteItemsd(keys="crop_label"),
        RandRotate90d(keys=list(KEYS), prob=0.1, max_k=3),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=0.2),
    ]
    return steps


def train_transforms(data: DataSpec, spec: DatasetSpec) -> Compose:
    """The full training chain for one dataset (its first random transform marks the cache boundary)."""
    return Compose(deterministic_transforms(data, spec) + random_transforms(data, spec))


def validation_transforms(data: DataSpec) -> Compose:
    """Whole-volume validation: load and scale intensity (sliding-window inference does the rest)."""
    return Compose(
        [
            LoadPreparedd(),
            ScaleIntensityRanged(
                keys="image", a_min=data.a_min, a_max=data.a_max, b_min=0.0, b_max=1.0, clip=True
            ),
        ]
    )
