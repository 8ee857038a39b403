"""Checklist of the 32 classes: grouped tree with colour swatches, filter, presets, dependencies.

Selecting a tumor also selects the organ(s) its post-processing needs; those organs are shown in
italics with a tooltip, and listed under the tree, so the user sees why they were added.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .qt_compat import check_state_is_checked, qt

#: Tree groups in display order: (title, catalog groups in it).
GROUP_ORDER: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Organs", ("organ",)),
    ("Vessels", ("vessel",)),
    ("Lungs", ("lung",)),
    ("Bones", ("bone",)),
    ("Tumors and cysts", ("tumor", "cyst")),
)
KEY_ROLE = 256  # Qt.UserRole
SWATCH_SIZE = 12


def preset_label(name: str) -> str:
    """Human-readable preset name: ``"liver_and_tumor"`` -> ``"Liver and tumor"``."""
    text = name.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def _catalog() -> tuple[Sequence[Any], Mapping[str, Sequence[str]], Callable[[Iterable[int]], set[int]]]:
    from UniversalSegLib.catalog import CLASSES, PRESETS, postprocess_requirements

    return CLASSES, PRESETS, postprocess_requirements


def _swatch(color: Sequence[int]) -> Any:
    pixmap = qt.QPixmap(SWATCH_SIZE, SWATCH_SIZE)
    pixmap.fill(qt.QColor(int(color[0]), int(color[1]), int(color[2])))
    return qt.QIcon(pixmap)


class ClassChecklist(qt.QWidget):
    """Tree of classes with check boxes.

    Args:
        classes: ``ClassInfo`` objects (index, key, display_name, group, color); the catalog by default.
        presets: preset name -> class keys.
        requirements: official indices -> extra indices their post-processing needs.
        translate: function that translates user-visible strings (Slicer's ``_``).
    """

    def __init__(
        self,
        parent: Any = None,
        classes: Sequence[Any] | None = None,
        presets: Mapping[str, Sequence[str]] | None = None,
        requirements: Callable[[Iterable[int]], set[int]] | None = None,
        translate: Callable[[str], str] = str,
    ) -> None:
        super().__init__(parent)
        if classes is None or presets is None or requirements is None:
            default_classes, default_presets, default_requirements = _catalog()
            classes = default_classes if classes is None else classes
            presets = default_presets if presets is None else presets
            requirements = default_requirements if requirements is None else requirements
        self._ = translate
        self._classes = {info.key: info for info in classes}
        self._by_index = {info.index: info for info in classes}
        self._presets = dict(presets)
        self._requirements = requirements
        self._auto_added: dict[str, list[str]] = {}  # organ key -> keys of the classes that need it
        self._updating = False
        self._last_states: dict[str, bool] = {}
        #: Callables run with the selected keys whenever the selection changes.
        self.selection_changed: list[Callable[[list[str]], None]] = []
        self._items: dict[str, Any] = {}
        self._group_items: dict[str, Any] = {}
        self._build()

    # ----------------------------------------------------------------------------------------- UI
    def _build(self) -> None:
        _ = self._
        layout = qt.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)

        top = qt.QHBoxLayout()
        self.filterEdit = qt.QLineEdit()
        self.filterEdit.setPlaceholderText(_("Filter classes..."))
        self.filterEdit.setToolTip(_("Show only the classes whose name contains this text"))
        self.filterEdit.textChanged.connect(self.setFilterText)
        top.addWidget(self.filterEdit, 1)
        self.presetCombo = qt.QComboBox()
        self.presetCombo.setToolTip(_("Replace the selection by a preset"))
        self.presetCombo.addItem(_("Presets..."))
        for name in self._presets:
            self.presetCombo.addItem(preset_label(name), name)
        self.presetCombo.activated.connect(self._on_preset_activated)
        top.addWidget(self.presetCombo)
        layout.addLayout(top)

        buttons = qt.QHBoxLayout()
        self.selectAllButton = qt.QPushButton(_("All"))
        self.selectAllButton.setToolTip(_("Select all classes shown"))
        self.selectAllButton.clicked.connect(lambda *args: self.setAllChecked(True))
        self.selectNoneButton = qt.QPushButton(_("None"))
        self.selectNoneButton.setToolTip(_("Clear the selection"))
        self.selectNoneButton.clicked.connect(lambda *args: self.setAllChecked(False))
        self.countLabel = qt.QLabel()
        buttons.addWidget(self.selectAllButton)
        buttons.addWidget(self.selectNoneButton)
        buttons.addStretch(1)
        buttons.addWidget(self.countLabel)
        layout.addLayout(buttons)

        self.tree = qt.QTreeWidget()
        self.tree.setHeaderHidden(True)
        self.tree.setColumnCount(1)
        self.tree.setMinimumHeight(220)
        for title, groups in GROUP_ORDER:
            members = [info for info in self._by_index.values() if info.group in groups]
            if not members:
                continue
            group_item = qt.QTreeWidgetItem([_(title)])
            group_item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsAutoTristate)
            group_item.setToolTip(0, _("Check or clear every class of this group"))
            self.tree.addTopLevelItem(group_item)
            self._group_items[title] = group_item
            for info in sorted(members, key=lambda c: c.index):
                item = qt.QTreeWidgetItem([info.display_name])
                item.setFlags(qt.Qt.ItemIsEnabled | qt.Qt.ItemIsUserCheckable | qt.Qt.ItemIsSelectable)
                item.setData(0, KEY_ROLE, info.key)
                item.setIcon(0, _swatch(info.color))
                item.setCheckState(0, qt.Qt.Unchecked)
                group_item.addChild(item)
                self._items[info.key] = item
            group_item.setExpanded(True)
        self.tree.itemChanged.connect(self._on_item_changed)
        layout.addWidget(self.tree, 1)

        self.autoAddedLabel = qt.QLabel()
        self.autoAddedLabel.setWordWrap(True)
        self.autoAddedLabel.setVisible(False)
        layout.addWidget(self.autoAddedLabel)
        self._refresh_decorations()
        self._last_states = self._check_states()

    # ------------------------------------------------------------------------------------- public
    def selectedKeys(self) -> list[str]:
        """Checked class keys in class-index order (organs added for post-processing included)."""
        keys = [key for key, item in self._items.items() if check_state_is_checked(item.checkState(0))]
        return sorted(keys, key=lambda key: self._classes[key].index)

    def chosenKeys(self) -> list[str]:
        """Checked keys the user chose (without the auto-added organs): what to remember."""
        return [key for key in self.selectedKeys() if key not in self._auto_added]

    def autoAddedKeys(self) -> list[str]:
        """Organ keys that were checked only because a selected tumor/cyst needs them."""
        return sorted(self._auto_added, key=lambda key: self._classes[key].index)

    def setSelectedKeys(self, keys: Iterable[str]) -> None:
        """Check exactly these classes (unknown keys are ignored) and their required organs."""
        wanted = {key for key in keys if key in self._items}
        self._auto_added.clear()
        self._run_update(lambda: [self._set_checked(key, key in wanted) for key in self._items])

    def setGroupChecked(self, title: str, checked: bool) -> None:
        """Check or clear every class of one group (title as in :data:`GROUP_ORDER`)."""
        group_item = self._group_items[title]
        keys = [group_item.child(row).data(0, KEY_ROLE) for row in range(group_item.childCount())]
        self._run_update(lambda: [self._set_checked(key, checked) for key in keys])

    def setAllChecked(self, checked: bool) -> None:
        """Check or clear every class that the filter shows."""
        keys = [key for key, item in self._items.items() if not item.isHidden()]
        if not checked:
            self._auto_added.clear()
        self._run_update(lambda: [self._set_checked(key, checked) for key in keys])

    def applyPreset(self, name: str) -> None:
        """Replace the selection by preset ``name``."""
        if name not in self._presets:
            raise KeyError(f"Unknown preset {name!r}; presets: {', '.join(self._presets)}")
        self.setSelectedKeys(self._presets[name])

    def presetNames(self) -> list[str]:
        return list(self._presets)

    def groupTitles(self) -> list[str]:
        return list(self._group_items)

    def keysInGroup(self, title: str) -> list[str]:
        group_item = self._group_items[title]
        return [group_item.child(row).data(0, KEY_ROLE) for row in range(group_item.childCount())]

    def isKeyVisible(self, key: str) -> bool:
        return not self._items[key].isHidden() and not self._items[key].parent().isHidden()

    def setFilterText(self, text: str) -> None:
        """Show only classes whose display name, key or group title contains ``text``."""
        needle = text.strip().lower()
        for title, group_item in self._group_items.items():
            group_matches = bool(needle) and needle in self._(title).lower()
            any_visible = False
            for row in range(group_item.childCount()):
                item = group_item.child(row)
                info = self._classes[item.data(0, KEY_ROLE)]
                visible = not needle or group_matches or needle in f"{info.display_name} {info.key}".lower()
                item.setHidden(not visible)
                any_visible = any_visible or visible
            group_item.setHidden(not any_visible)

    # ------------------------------------------------------------------------------------ private
    def _on_preset_activated(self, row: Any) -> None:
        if isinstance(row, str):  # PythonQt may deliver the activated(QString) overload
            row = self.presetCombo.findText(row)
        if row <= 0:
            return
        self.applyPreset(str(self.presetCombo.itemData(row)))
        self.presetCombo.setCurrentIndex(0)

    def _set_checked(self, key: str, checked: bool) -> None:
        self._items[key].setCheckState(0, qt.Qt.Checked if checked else qt.Qt.Unchecked)

    def _run_update(self, change: Callable[[], Any]) -> None:
        self._updating = True
        try:
            change()
        finally:
            self._updating = False
        self._enforce_requirements(unchecked_key=None)
        self._refresh_decorations()
        self._notify()

    def _on_item_changed(self, item: Any, column: int = 0) -> None:
        if self._updating:
            return
        current = self._check_states()
        changed = [key for key, checked in current.items() if checked != self._last_states.get(key)]
        if not changed:  # e.g. a group's tri-state update, or a repeated notification
            return
        unchecked = None
        for key in changed:
            if current[key]:
                self._auto_added.pop(key, None)  # the user chose it now
            else:
                unchecked = key
        self._updating = True
        try:
            self._enforce_requirements(unchecked_key=unchecked)
        finally:
            self._updating = False
        self._refresh_decorations()
        self._notify()

    def _check_states(self) -> dict[str, bool]:
        return {key: check_state_is_checked(item.checkState(0)) for key, item in self._items.items()}

    def _enforce_requirements(self, unchecked_key: str | None) -> None:
        """Check the organs that selected tumors need; drop auto-added organs nobody needs."""
        updating = self._updating
        self._updating = True
        try:
            selected = self.selectedKeys()
            needed_by: dict[str, list[str]] = {}
            for key in selected:
                index = self._classes[key].index
                for extra in sorted(self._requirements([index]) - {index}):
                    organ = self._by_index[extra].key
                    needed_by.setdefault(organ, []).append(key)
            for organ, dependents in needed_by.items():
                if organ not in selected or organ == unchecked_key:
                    self._set_checked(organ, True)
                    self._auto_added[organ] = dependents
                elif organ in self._auto_added:
                    self._auto_added[organ] = dependents
            for organ in list(self._auto_added):
                if organ not in needed_by:
                    del self._auto_added[organ]
                    self._set_checked(organ, False)
        finally:
            self._updating = updating

    def _refresh_decorations(self) -> None:
        updating, self._updating = self._updating, True  # fonts and tooltips emit itemChanged too
        try:
            self._decorate()
        finally:
            self._updating = updating

    def _decorate(self) -> None:
        _ = self._
        for key, item in self._items.items():
            font = item.font(0)
            dependents = self._auto_added.get(key)
            font.setItalic(bool(dependents))
            item.setFont(0, font)
            if dependents:
                names = ", ".join(self._classes[d].display_name for d in dependents)
                item.setToolTip(0, _("Added automatically: needed by {names}").format(names=names))
            else:
                item.setToolTip(0, self._classes[key].display_name)
        if self._auto_added:
            parts = [
                _("{organ} (needed by {names})").format(
                    organ=self._classes[organ].display_name,
                    names=", ".join(self._classes[d].display_name for d in dependents),
                )
                for organ, dependents in sorted(
                    self._auto_added.items(), key=lambda kv: self._classes[kv[0]].index
                )
            ]
            self.autoAddedLabel.setText(_("Also segmented for post-processing: ") + "; ".join(parts))
        self.autoAddedLabel.setVisible(bool(self._auto_added))
        self.countLabel.setText(
            _("{count} of {total} selected").format(count=len(self.selectedKeys()), total=len(self._items))
        )

    def _notify(self) -> None:
        self._last_states = self._check_states()
        keys = self.selectedKeys()
        for callback in list(self.selection_changed):
            callback(keys)
