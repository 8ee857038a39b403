"""The class catalog CSV and ClassInfo records."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from UniversalSegLib.catalog import (
    CLASSES,
    GROUPS,
    Terminology,
    groups,
    official_class_names,
    parse_catalog,
    read_catalog_text,
)
from UniversalSegLib.catalog.terminology import TERMINOLOGY_PARTS

SLICER_COLUMNS = ["LabelValue", "Name", "Color_R", "Color_G", "Color_B", "Color_A"] + [
    f"{part}_{field}" for part in TERMINOLOGY_PARTS for field in ("CodingScheme", "CodeValue", "CodeMeaning")
]
OUR_COLUMNS = ["key", "official_name", "display_name", "group", "parent_key"]


def spec_organ_names(spec_dir: Path) -> list[str]:
    """ORGAN_NAME as listed in MODEL_SPEC §1.5 ("1 Spleen, 2 Right Kidney, ...")."""
    text = (spec_dir / "MODEL_SPEC.md").read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("1 Spleen, 2 "))
    items = re.findall(r"(\d+) ([^,.]+?)(?=, \d+ |\.$)", line)
    assert [int(i) for i, _ in items] == list(range(1, len(items) + 1))
    return [name for _, name in items]


def test_catalog_matches_official_organ_names(spec_dir):
    names = spec_organ_names(spec_dir)
    assert len(names) == 32
    assert official_class_names() == names
    assert [c.index for c in CLASSES] == list(range(1, 33))
    assert [c.channel for c in CLASSES] == list(range(32))
    prompt_names = [c.prompt_name for c in CLASSES]
    assert [i for i, (a, b) in enumerate(zip(prompt_names, names, strict=True)) if a != b] == [7]
    assert prompt_names[7] == "Arota"  # spelling of the official clip_embedding.py (MODEL_SPEC §1.5)


def test_csv_has_slicer_and_catalog_columns():
    rows = list(csv.DictReader(io.StringIO(read_catalog_text())))
    assert len(rows) == 32
    header = list(rows[0])
    assert header[: len(SLICER_COLUMNS)] == SLICER_COLUMNS
    assert set(OUR_COLUMNS) <= set(header)
    for row in rows:
        assert int(row["Color_A"]) == 255
        assert row["Name"] == row["display_name"]


def test_every_class_has_colour_group_and_terminology():
    keys = [c.key for c in CLASSES]
    assert len(set(keys)) == 32
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", k) for k in keys)
    assert len({c.display_name.lower() for c in CLASSES}) == 32
    for info in CLASSES:
        assert info.group in GROUPS
        assert len(info.color) == 3 and all(0 <= v <= 255 for v in info.color)
        term = info.terminology
        assert term.category.scheme == "SCT" and term.category.value.isdigit()
        assert term.type.scheme == "SCT" and term.type.value.isdigit() and term.type.meaning
        if info.group in ("tumor", "cyst"):
            assert term.category.meaning == "Morphologically Altered Structure"
            assert term.region, f"{info.key} needs an anatomic region"
        else:
            assert term.category.meaning == "Anatomical Structure"


def test_laterality_follows_name():
    for info in CLASSES:
        modifier = info.terminology.type_modifier.meaning
        if "right" in info.key:
            assert modifier == "Right"
        elif "left" in info.key:
            assert modifier == "Left"
        else:
            assert not info.terminology.type_modifier


def test_tumors_and_cyst_have_parent_organs():
    by_key = {c.key: c for c in CLASSES}
    for info in CLASSES:
        if info.group in ("tumor", "cyst"):
            assert info.parent_keys, info.key
            assert info.parent_key == info.parent_keys[0]
            for parent in info.parent_keys:
                assert by_key[parent].group not in ("tumor", "cyst")
        else:
            assert info.parent_key is None
    assert set(by_key["kidney_tumor"].parent_keys) == {"kidney_right", "kidney_left"}
    assert by_key["liver_tumor"].parent_keys == ("liver",)


def test_groups_partition_the_catalog():
    grouped = groups()
    assert set(grouped) == set(GROUPS)
    assert sorted(c.index for members in grouped.values() for c in members) == list(range(1, 33))
    assert [c.key for c in grouped["lung"]] == ["lung_right", "lung_left"]
    assert len(grouped["tumor"]) == 6 and [c.key for c in grouped["cyst"]] == ["kidney_cyst"]


def test_terminology_entry_round_trips_in_slicer_format():
    info = next(c for c in CLASSES if c.key == "kidney_left")
    entry = info.terminology_entry()
    parts = entry.split("~")
    assert len(parts) == 7
    assert parts[1] == "SCT^123037004^Anatomical Structure"
    assert parts[3] == "SCT^7771000^Left"
    assert all(len(p.split("^")) == 3 for i, p in enumerate(parts) if i not in (0, 4))
    assert Terminology.from_slicer_entry(entry) == info.terminology


def test_terminology_entry_is_read_by_slicerio():
    segmentation = pytest.importorskip("slicerio.segmentation")
    info = next(c for c in CLASSES if c.key == "liver_tumor")
    parsed = segmentation.terminology_entry_from_string(info.terminology_entry())
    assert parsed["type"] == ["SCT", info.terminology.type.value, info.terminology.type.meaning]
    assert parsed["anatomicRegion"] == ["SCT", info.terminology.region.value, "Liver"]
    assert segmentation.terminology_entry_to_string(parsed) == info.terminology_entry()


def test_parse_catalog_rejects_bad_rows():
    text = read_catalog_text()
    header, *rows = text.splitlines()
    with pytest.raises(ValueError, match="1..N"):
        parse_catalog("\n".join([header, *rows[1:]]))
    with pytest.raises(ValueError, match="line 2"):
        parse_catalog("\n".join([header, rows[0].replace(",organ,", ",gland,", 1), *rows[1:]]))
