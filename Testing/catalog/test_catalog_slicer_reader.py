"""Slicer's own colour-table reader (slicer-core) accepts the catalog CSV."""

from __future__ import annotations

from importlib import resources

import pytest

from UniversalSegLib.catalog import CATALOG_FILE_NAME, CLASSES


@pytest.fixture(scope="module")
def color_node():
    slicer = pytest.importorskip("slicer")
    path = resources.files("UniversalSegLib").joinpath("resources", CATALOG_FILE_NAME)
    node = slicer.vtkMRMLColorTableNode()
    storage = slicer.vtkMRMLColorTableStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node) == 1
    return node


def test_slicer_reads_names_and_colours(color_node):
    assert color_node.GetNumberOfColors() == len(CLASSES) + 1  # label values 0..32
    for info in CLASSES:
        assert color_node.GetColorName(info.index) == info.display_name
        rgba = [0.0] * 4
        color_node.GetColor(info.index, rgba)
        assert [round(255 * v) for v in rgba] == [*info.color, 255]


def test_slicer_reads_terminology_codes(color_node):
    getters = {
        "category": color_node.GetTerminologyCategory,
        "type": color_node.GetTerminologyType,
        "type_modifier": color_node.GetTerminologyTypeModifier,
        "region": color_node.GetTerminologyRegion,
        "region_modifier": color_node.GetTerminologyRegionModifier,
    }
    for info in CLASSES:
        for part, getter in getters.items():
            ours = getattr(info.terminology, part)
            entry = getter(info.index)
            theirs = (
                (
                    entry.GetCodingSchemeDesignator() or "",
                    entry.GetCodeValue() or "",
                    entry.GetCodeMeaning() or "",
                )
                if entry is not None
                else ("", "", "")
            )
            assert theirs == (ours.scheme, ours.value, ours.meaning), (info.key, part)
