"""The panel's advanced options, remembered across sessions in the application settings.

"Reuse image features of earlier runs" (on by default): the engine keeps each run's image features in the
per-user cache and answers a later run of the same volume with other classes in seconds. Off passes
``--no-feature-cache``: nothing is kept or reused. It is a preference of the user, not of a scene, so it
lives in ``QSettings`` (like the remembered classes) rather than in the parameter node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .qt_compat import qt

SETTINGS_REUSE_FEATURES_KEY = "UniversalSeg/ReuseImageFeatures"


def settings_flag(value: Any, default: bool) -> bool:
    """A boolean read back from ``QSettings`` (a bool, or ``"true"``/``"false"`` from an INI file)."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


class AdvancedOptions(qt.QWidget):
    """The advanced options' widgets.

    Args:
        settings: where the choices are remembered (``qt.QSettings()`` when ``None``).
        translate: Slicer's ``_`` for user-visible strings.
    """

    def __init__(
        self, parent: Any = None, settings: Any = None, translate: Callable[[str], str] = str
    ) -> None:
        super().__init__(parent)
        _ = translate
        self.settings = settings if settings is not None else qt.QSettings()
        #: Callables run with the new value when the user turns feature reuse on or off.
        self.reuse_features_changed: list[Callable[[bool], None]] = []
        layout = qt.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.reuseFeaturesCheckBox = qt.QCheckBox(_("Reuse image features of earlier runs"))
        self.reuseFeaturesCheckBox.setToolTip(
            _(
                "Keep the image features of each run in the cache folder (up to 4 GB by default, oldest "
                "removed first) so that segmenting the same volume again with other classes takes "
                "seconds instead of minutes. Off: nothing is kept or reused."
            )
        )
        self.reuseFeaturesCheckBox.setChecked(
            settings_flag(self.settings.value(SETTINGS_REUSE_FEATURES_KEY), default=True)
        )
        self.reuseFeaturesCheckBox.toggled.connect(self._on_reuse_toggled)
        layout.addWidget(self.reuseFeaturesCheckBox)

    def reuseFeatures(self) -> bool:
        """Whether runs reuse (and keep) image features."""
        return bool(self.reuseFeaturesCheckBox.isChecked())

    def setReuseFeatures(self, reuse: bool) -> None:
        self.reuseFeaturesCheckBox.setChecked(bool(reuse))

    def _on_reuse_toggled(self, *args: Any) -> None:
        reuse = self.reuseFeatures()
        self.settings.setValue(SETTINGS_REUSE_FEATURES_KEY, reuse)
        for callback in list(self.reuse_features_changed):
            callback(reuse)
