"""The class checklist under Qt.py + PySide6: groups, filter, presets, select all/none, dependencies."""

from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from UniversalSegGui.class_checklist import GROUP_ORDER, ClassChecklist, preset_label  # noqa: E402
from UniversalSegGui.qt_compat import qt  # noqa: E402

from UniversalSegLib.catalog import CLASSES, PRESETS, get_class  # noqa: E402


@pytest.fixture()
def checklist(qtbot):
    widget = ClassChecklist()
    qtbot.addWidget(widget)
    return widget


def test_every_class_is_in_its_group_with_its_colour(checklist):
    groups_of = {title: set(groups) for title, groups in GROUP_ORDER}
    seen = []
    for title in checklist.groupTitles():
        keys = checklist.keysInGroup(title)
        seen += keys
        assert all(get_class(key).group in groups_of[title] for key in keys)
    assert sorted(seen) == sorted(info.key for info in CLASSES)
    assert len(seen) == 32
    liver = checklist._items["liver"]
    assert liver.text(0) == "Liver"
    image = liver.icon(0).pixmap(8, 8).toImage()
    assert image.pixelColor(4, 4).getRgb()[:3] == get_class("liver").color
    assert checklist.selectedKeys() == []


def test_filter_hides_other_classes_and_empty_groups(checklist, qtbot):
    qtbot.keyClicks(checklist.filterEdit, "kidney")
    visible = [key for key in checklist._items if checklist.isKeyVisible(key)]
    assert visible == ["kidney_right", "kidney_left", "kidney_tumor", "kidney_cyst"]
    assert checklist._group_items["Bones"].isHidden()
    checklist.filterEdit.clear()
    assert all(checklist.isKeyVisible(key) for key in checklist._items)


def test_select_all_and_none_per_group_and_overall(checklist):
    checklist.setGroupChecked("Bones", True)
    assert checklist.selectedKeys() == ["femur_head_left", "femur_head_right"]
    checklist._group_items["Bones"].setCheckState(0, qt.Qt.Unchecked)  # the group's own check box
    assert checklist.selectedKeys() == []
    checklist._group_items["Vessels"].setCheckState(0, qt.Qt.Checked)
    # The portal vein's post-processing needs the pancreas, which is added with it.
    assert set(checklist.selectedKeys()) == set(checklist.keysInGroup("Vessels")) | {"pancreas"}
    assert checklist.autoAddedKeys() == ["pancreas"]
    checklist.selectAllButton.click()
    assert len(checklist.selectedKeys()) == 32
    checklist.selectNoneButton.click()
    assert checklist.selectedKeys() == []


def test_presets_replace_the_selection(checklist):
    names = checklist.presetNames()
    assert names == list(PRESETS)
    row = names.index("btcv") + 1
    assert checklist.presetCombo.itemText(row) == preset_label("btcv") == "Btcv"
    checklist.setSelectedKeys(["colon"])
    checklist.presetCombo.activated.emit(row)
    expected = sorted(PRESETS["btcv"], key=lambda key: get_class(key).index)
    assert checklist.selectedKeys() == expected
    assert checklist.presetCombo.currentIndex() == 0
    with pytest.raises(KeyError, match="Unknown preset"):
        checklist.applyPreset("no such preset")


def test_tumor_selects_its_organ_visibly(checklist):
    changes = []
    checklist.selection_changed.append(changes.append)
    checklist._items["liver_tumor"].setCheckState(0, qt.Qt.Checked)
    assert checklist.selectedKeys() == ["liver", "liver_tumor"]
    assert checklist.autoAddedKeys() == ["liver"]
    liver = checklist._items["liver"]
    assert liver.font(0).italic()
    assert "Liver tumor" in liver.toolTip(0)
    assert not checklist.autoAddedLabel.isHidden()
    assert "Liver (needed by Liver tumor)" in checklist.autoAddedLabel.text()
    assert changes[-1] == ["liver", "liver_tumor"]

    # Unchecking a needed organ while its tumor is selected keeps it (post-processing needs it).
    liver.setCheckState(0, qt.Qt.Unchecked)
    assert "liver" in checklist.selectedKeys()
    # Unchecking the tumor drops the organ it had added.
    checklist._items["liver_tumor"].setCheckState(0, qt.Qt.Unchecked)
    assert checklist.selectedKeys() == []
    assert checklist.autoAddedLabel.isHidden()


def test_organ_chosen_by_the_user_stays_when_the_tumor_goes(checklist):
    checklist.setSelectedKeys(["kidney_left", "kidney_tumor"])
    assert checklist.selectedKeys() == ["kidney_right", "kidney_left", "kidney_tumor"]
    assert checklist.autoAddedKeys() == ["kidney_right"]
    checklist._items["kidney_tumor"].setCheckState(0, qt.Qt.Unchecked)
    assert checklist.selectedKeys() == ["kidney_left"]
    assert not checklist._items["kidney_left"].font(0).italic()


def test_selected_keys_round_trip_through_settings(checklist, qtbot, tmp_path):
    settings = qt.QSettings(str(tmp_path / "settings.ini"), qt.QSettings.IniFormat)
    checklist.setSelectedKeys(["spleen", "liver_tumor", "unknown_key"])
    assert checklist.chosenKeys() == ["spleen", "liver_tumor"]
    settings.setValue("UniversalSeg/classes", ",".join(checklist.chosenKeys()))
    restored = ClassChecklist()
    qtbot.addWidget(restored)
    restored.setSelectedKeys(str(settings.value("UniversalSeg/classes")).split(","))
    assert restored.selectedKeys() == ["spleen", "liver", "liver_tumor"]
    assert restored.autoAddedKeys() == ["liver"]
