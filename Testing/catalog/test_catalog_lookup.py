"""Class lookups, presets and post-processing requirements."""

from __future__ import annotations

import pytest

from UniversalSegLib.catalog import (
    CLASSES,
    PRESETS,
    UnknownClassError,
    children_of,
    get_class,
    postprocess_requirements,
    resolve_classes,
    resolve_preset,
)


@pytest.mark.parametrize(
    ("ref", "key"),
    [
        ("liver", "liver"),
        ("LIVER", "liver"),
        (6, "liver"),
        ("6", "liver"),
        (" 25 ", "celiac_trunk"),
        ("Celiac Truck", "celiac_trunk"),
        ("celiac trunk", "celiac_trunk"),
        ("celiac-trunk", "celiac_trunk"),
        ("Postcava", "inferior_vena_cava"),
        ("Arota", "aorta"),
        ("inferior vena cava", "inferior_vena_cava"),
        ("Intestine", "small_bowel"),
        ("Right Head of Femur", "femur_head_right"),
        ("kidney tumor", "kidney_tumor"),
    ],
)
def test_get_class_accepts_keys_names_and_indices(ref, key):
    assert get_class(ref).key == key


def test_get_class_by_every_name_of_every_class():
    for info in CLASSES:
        for ref in (
            info.key,
            info.display_name,
            info.official_name,
            info.prompt_name,
            info.index,
            str(info.index),
        ):
            assert get_class(ref) is info


@pytest.mark.parametrize("ref", ["livr", "brain", 0, 33, "", "-1", True])
def test_unknown_class_error_lists_valid_keys(ref):
    with pytest.raises(UnknownClassError) as info:
        get_class(ref)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "kidney_tumor" in message and "celiac_trunk" in message


def test_unknown_class_error_suggests_close_matches():
    with pytest.raises(UnknownClassError) as info:
        get_class("pancreas tumour")
    assert "pancreas_tumor" in info.value.suggestions
    assert "Did you mean" in str(info.value)


def test_resolve_classes_sorts_uniques_and_expands_presets():
    assert resolve_classes(["liver_tumor", "liver", 6, "Liver"]) == [6, 27]
    assert resolve_classes("liver, liver_tumor") == [6, 27]
    assert resolve_classes(["pancreas_and_tumor", "spleen"]) == [1, 11, 28]
    with pytest.raises(UnknownClassError):
        resolve_classes(["liver", "heart"])


def test_presets_resolve_to_valid_classes():
    for name, keys in PRESETS.items():
        indices = resolve_preset(name)
        assert indices == sorted({get_class(k).index for k in keys}) and indices, name
    assert resolve_preset("all") == list(range(1, 33))
    assert resolve_preset("all_tumors") == list(range(26, 32))
    assert resolve_preset("Liver and tumor") == [6, 27]
    assert resolve_preset("kidneys_and_tumors") == [2, 3, 26, 32]
    with pytest.raises(KeyError, match="Valid presets"):
        resolve_preset("whole_body")


def test_preset_names_do_not_shadow_class_names():
    for name in PRESETS:
        with pytest.raises(UnknownClassError):
            get_class(name)


@pytest.mark.parametrize(
    ("selection", "needed"),
    [
        ([27], {6}),
        ([26], {2, 3}),
        ([10], {11}),
        ([16], {16, 17}),
        ([17], {16, 17}),
        ([1, 5, 15, 28, 29, 30, 31, 32], set()),
        ([10, 26, 27], {2, 3, 6, 11}),
    ],
)
def test_postprocess_requirements(selection, needed):
    assert postprocess_requirements(selection) == needed


def test_children_of_organs():
    assert [c.key for c in children_of("kidney_left")] == ["kidney_tumor", "kidney_cyst"]
    assert [c.key for c in children_of("liver")] == ["liver_tumor"]
    assert children_of("spleen") == ()
