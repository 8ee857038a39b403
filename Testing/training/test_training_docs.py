"""docs/training.md documents every config key (generated from the config dataclasses and key tables)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from training.config import CropSpec, DataSpec, ModelSpec, TrainSpec, config_from_dict
from training.config_keys import CASE, DATASET, NEW_CLASS, TOP_LEVEL
from training.config_reference import BEGIN, END, reference_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"


def _documented() -> dict[str, set[str]]:
    """Section title -> keys with a table row in docs/training.md."""
    text = DOC.read_text(encoding="utf-8")
    sections: dict[str, set[str]] = {}
    title = ""
    for line in text[text.index(BEGIN) : text.index(END)].splitlines():
        if line.startswith("### "):
            title = line[4:]
            sections[title] = set()
        elif line.startswith("| `"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            assert len(cells) == 4 and cells[1] and cells[3], f"{title}: incomplete row {line!r}"
            sections[title].add(cells[0].strip("`"))
    return sections


def test_the_generated_reference_is_up_to_date():
    assert reference_markdown() in DOC.read_text(encoding="utf-8"), (
        "run: python -m training.config_reference docs/training.md"
    )


def test_every_config_key_is_documented():
    expected = {
        "Top level": {s.name for s in TOP_LEVEL},
        "`data`": {f.name for f in dataclasses.fields(DataSpec)},
        "`model`": {f.name for f in dataclasses.fields(ModelSpec)},
        "`train`": {f.name for f in dataclasses.fields(TrainSpec)},
        "`datasets[]`": {s.name for s in DATASET},
        "`datasets[].cases[]` / `val_cases[]`": {s.name for s in CASE},
        "`datasets[].crop`": {f.name for f in dataclasses.fields(CropSpec)},
        "`new_classes[]`": {s.name for s in NEW_CLASS},
    }
    assert _documented() == expected
    for cls in (DataSpec, ModelSpec, TrainSpec, CropSpec):
        assert all(f.metadata.get("doc") for f in dataclasses.fields(cls)), cls.__name__


def test_a_config_with_every_documented_key_is_accepted(tmp_path):
    documented = _documented()
    sections = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}
    dataset = {
        "key": "A",
        "name": None,
        "root": ".",
        "cases": [{"image": "a.nii.gz", "label": "a_seg.nii.gz"}],
        "val_cases": [],
        "list_file": None,
        "val_list_file": None,
        "label_map": {1: "kidney_right"},
        "classes": ["kidney_right", "kidney_left"],
        "rl_split": [["kidney_right", "kidney_left"]],
        "crop": {f.name: getattr(CropSpec(), f.name) for f in dataclasses.fields(CropSpec)},
        "rand_zoom": False,
        "sampling_group": "A",
    }
    raw = {
        "name": "all_keys",
        "output_dir": "runs",
        "cache_dir": "cache",
        "prompt_template": "A computerized tomography of a {name}",
        "new_classes": [{"name": "Wall", "key": "wall"}],
        "text_encoder": {},
        "strict_labels": True,
        **{name: dataclasses.asdict(cls()) for name, cls in sections.items()},
        "datasets": [dataset],
    }
    assert set(raw) == documented["Top level"] and set(dataset) == documented["`datasets[]`"]
    config = config_from_dict(raw, tmp_path)
    assert config.num_classes == 33 and config.strict_labels and config.dataset("A").rl_split == [(2, 3)]
