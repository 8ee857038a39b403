"""Shared helpers for the training tests: tiny partially labelled datasets cut from a real CT."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from training.config import TrainingConfig, config_from_dict

CROPS = {
    "case0": (slice(8, 112), slice(20, 90), slice(0, 22)),
    "case1": (slice(8, 112), slice(20, 90), slice(8, 30)),
}


def write_crop(source: Path, crop: tuple[slice, ...], out: Path) -> None:
    """Save ``source[crop]`` as NIfTI with the affine moved to the crop origin."""
    image = nib.load(str(source))
    data = np.asarray(image.dataobj)[crop]
    offset = np.eye(4)
    offset[:3, 3] = [c.start for c in crop]
    nib.save(nib.Nifti1Image(data, image.affine @ offset), str(out))


def make_cases(ct_dir: Path, folder: Path) -> list[tuple[str, str]]:
    """Two real CT crops with their TotalSegmentator labels (1 spleen, 2/3 kidney R/L, 5 liver)."""
    source = ct_dir / "totalseg_example"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for name, crop in CROPS.items():
        image, label = folder / f"{name}_ct.nii.gz", folder / f"{name}_seg.nii.gz"
        if not image.exists():
            write_crop(source / "example_ct_sm.nii.gz", crop, image)
            write_crop(source / "example_seg.nii.gz", crop, label)
        pairs.append((str(image), str(label)))
    return pairs


def make_config(
    ct_dir: Path, folder: Path, *, backbone: str = "unet", roi: int = 32, extra: dict | None = None
) -> TrainingConfig:
    """Dataset A annotates liver + spleen, dataset B both kidneys (merged, then split left/right)."""
    pairs = make_cases(ct_dir, folder / "data")
    raw = {
        "name": "tiny",
        "output_dir": str(folder / "run"),
        "cache_dir": str(folder / "cache"),
        "datasets": [
            {"key": "A", "cases": [list(p) for p in pairs], "label_map": {1: "spleen", 5: "liver"}},
            {
                "key": "B",
                "cases": [list(p) for p in pairs],
                "label_map": {2: "kidney_right", 3: "kidney_right"},
                "rl_split": [["kidney_right", "kidney_left"]],
            },
        ],
        "data": {"spacing": 3.0, "roi_size": roi, "num_samples": 1, "batch_size": 1, "prepare_workers": 1},
        "model": {"backbone": backbone, "embeddings": str(ct_dir.parent / "txt_encoding.pth")},
        "train": {"epochs": 4, "warmup_epochs": 2, "save_every": 0, "amp": "off", "seed": 0},
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict):
            raw.setdefault(section, {}).update(values)
        else:
            raw[section] = values
    return config_from_dict(raw, folder)
