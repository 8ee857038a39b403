"""Model choice and the cache: license, download (with progress), import, open folder, clear.

Uses :class:`UniversalSegLib.weights.manager.WeightsManager` for everything on disk; downloads run
in a background process (``python -m UniversalSegLib weights download``) so the GUI stays live. Everything
shown before a download (status, sizes measured on disk, cache folder, clear) needs only the standard
library, so it works in a stock Slicer before the first run installs the engine's packages.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .choices import MODEL_CHOICES
from .qt_compat import prop, qt

#: (catalog name, label) in the order shown; the first is the default (declared in ``choices``).
MODELS: tuple[tuple[str, str], ...] = MODEL_CHOICES


def _default_manager() -> Any:
    from UniversalSegLib.weights.manager import WeightsManager

    return WeightsManager()


class WeightsPanel(qt.QWidget):
    """Model combo box plus the weights cache buttons.

    Args:
        manager: a ``WeightsManager`` (created on first use when ``None``).
        translate: Slicer's ``_`` for user-visible strings.
        ask_license, confirm, choose_file, show_error, open_folder: dialogs, replaceable in tests.
    """

    def __init__(
        self,
        parent: Any = None,
        manager: Any = None,
        translate: Callable[[str], str] = str,
        ask_license: Callable[[str], bool] | None = None,
        confirm: Callable[[str], bool] | None = None,
        choose_file: Callable[[], str] | None = None,
        show_error: Callable[[str], None] | None = None,
        open_folder: Callable[[Path], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self._ = translate
        self._manager = manager
        self.ask_license = ask_license or self._ask_license_dialog
        self.confirm = confirm or self._confirm_dialog
        self.choose_file = choose_file or self._choose_file_dialog
        self.show_error = show_error or self._error_dialog
        self.open_folder = open_folder or self._open_folder
        #: Callables run with the model name when the choice changes.
        self.model_changed: list[Callable[[str], None]] = []
        #: Callables run with the process result when a download ends.
        self.download_finished: list[Callable[[Any], None]] = []
        #: Callables run (without arguments) after the cache was cleared.
        self.cache_cleared: list[Callable[[], None]] = []
        self.runner_factory: Callable[[], Any] | None = None
        self._runner: Any = None
        self._build()
        self.refresh()

    @property
    def manager(self) -> Any:
        if self._manager is None:
            self._manager = _default_manager()
        return self._manager

    # ----------------------------------------------------------------------------------------- UI
    def _build(self) -> None:
        _ = self._
        layout = qt.QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.modelCombo = qt.QComboBox()
        for name, label in MODELS:
            self.modelCombo.addItem(_(label), name)
        self.modelCombo.setToolTip(_("Backbone of the CLIP-Driven Universal Model"))
        self.modelCombo.currentIndexChanged.connect(self._on_model_changed)
        layout.addRow(_("Model:"), self.modelCombo)

        self.statusLabel = qt.QLabel()
        self.statusLabel.setWordWrap(True)
        layout.addRow(_("Weights:"), self.statusLabel)
        self.cacheLabel = qt.QLabel()
        self.cacheLabel.setWordWrap(True)
        self.cacheLabel.setToolTip(
            _(
                "Downloaded weights, converted models, image features of earlier runs and measured speeds, "
                "measured on disk"
            )
        )
        layout.addRow(_("Cache:"), self.cacheLabel)

        buttons = qt.QHBoxLayout()
        self.downloadButton = qt.QPushButton(_("Download"))
        self.downloadButton.setToolTip(_("Download the chosen model's weights now (else on the first run)"))
        self.downloadButton.clicked.connect(lambda *args: self._on_download_clicked())
        self.importButton = qt.QPushButton(_("Import file..."))
        self.importButton.setToolTip(_("Copy a weights file you downloaded yourself into the cache"))
        self.importButton.clicked.connect(lambda *args: self.importWeights())
        self.openFolderButton = qt.QPushButton(_("Open cache folder"))
        self.openFolderButton.setToolTip(
            _("Open the folder that holds the weights, converted models and speeds")
        )
        self.openFolderButton.clicked.connect(lambda *args: self.openCacheFolder())
        self.clearButton = qt.QPushButton(_("Clear cache"))
        self.clearButton.setToolTip(
            _(
                "Delete the weights, converted models, image features of earlier runs and measured speeds "
                "(the license acceptance is kept)"
            )
        )
        self.clearButton.clicked.connect(lambda *args: self.clearCache())
        for button in (self.downloadButton, self.importButton, self.openFolderButton, self.clearButton):
            buttons.addWidget(button)
        layout.addRow(buttons)
        self.downloadProgress = qt.QProgressBar()
        self.downloadProgress.setRange(0, 100)
        self.downloadProgress.setVisible(False)
        layout.addRow(self.downloadProgress)

    # ------------------------------------------------------------------------------------- public
    def model(self) -> str:
        return str(self.modelCombo.itemData(prop(self.modelCombo, "currentIndex")))

    def setModel(self, name: str) -> None:
        for row in range(prop(self.modelCombo, "count")):
            if self.modelCombo.itemData(row) == name:
                self.modelCombo.setCurrentIndex(row)
                return
        raise ValueError(f"Unknown model {name!r}; choose one of {[m for m, _ in MODELS]}")

    def refresh(self) -> None:
        """Show whether the chosen model's weights are in the cache, and what the cache holds."""
        _ = self._
        try:
            self.statusLabel.setText(self._status_text())
            self.cacheLabel.setText(
                _("{usage} in {folder}").format(
                    usage=self.manager.usage().describe(self._), folder=self.manager.home
                )
            )
        except Exception as error:  # a broken catalog or cache must not break the panel
            self.statusLabel.setText(_("unavailable: {error}").format(error=error))
            self.cacheLabel.setText("")

    def ensureLicenseAccepted(self, name: str | None = None) -> bool:
        """Ask once for the weights license; remembered by the manager. True when accepted."""
        name = name or self.model()
        if not self.manager.needs_license_acceptance(name):
            return True
        if not self.ask_license(self.manager.license_notice(name)):
            return False
        self.manager.accept_license(name)
        return True

    def isDownloading(self) -> bool:
        return self._runner is not None and self._runner.isRunning()

    def downloadWeights(self) -> bool:
        """Download the chosen model's weights in a background process; False if not started."""
        from .engine_command import download_arguments, engine_environment, python_executable
        from .process_runner import ProcessRunner

        if self.isDownloading() or not self.ensureLicenseAccepted():
            return False
        if self._runner is None:
            self._runner = self.runner_factory() if self.runner_factory else ProcessRunner()
            self._runner.progress_callbacks.append(self._on_download_progress)
            self._runner.finished_callbacks.append(self._on_download_finished)
        self.downloadProgress.setValue(0)
        self.downloadProgress.setVisible(True)
        self.downloadButton.setText(self._("Cancel download"))
        self._runner.start(python_executable(), download_arguments(self.model(), True), engine_environment())
        return True

    def cancelDownload(self) -> None:
        if self.isDownloading():
            self._runner.cancel()

    def importWeights(self, path: str | None = None) -> Path | None:
        """Copy a local weights file into the cache for the chosen model."""
        path = path or self.choose_file()
        if not path:
            return None
        try:
            imported = self.manager.import_file(self.model(), path)
        except Exception as error:
            self.show_error(self._("Could not import {path}: {error}").format(path=path, error=error))
            return None
        self.refresh()
        return imported

    def clearCache(self) -> list[Path]:
        """After a confirmation, delete the weights, converted models, image features and measured speeds."""
        _ = self._
        question = _(
            "Delete everything cached in {folder}: {usage}?\n"
            "(downloaded weights, converted models, image features of earlier runs and measured speeds; "
            "the license acceptance is kept)"
        ).format(folder=self.manager.home, usage=self.manager.usage().describe(self._))
        if not self.confirm(question):
            return []
        try:
            removed = self.manager.clear_all()
        except OSError as error:
            self.show_error(
                _(
                    "Could not delete all of the cache: {error}\n"
                    "Wait until no segmentation runs, then try again."
                ).format(error=error)
            )
            removed = []
        self.refresh()
        for callback in list(self.cache_cleared):
            callback()
        return removed

    def openCacheFolder(self) -> Path:
        """Open the folder that holds every cache (weights, converted models, measured speeds)."""
        folder = Path(self.manager.home)
        folder.mkdir(parents=True, exist_ok=True)
        self.open_folder(folder)
        return folder

    # ------------------------------------------------------------------------------------ private
    def _status_text(self) -> str:
        from UniversalSegLib.weights.cache_usage import format_size, path_size

        _ = self._
        name = self.model()
        if self.manager.is_available(name):
            path = self.manager.path(name)
            return _("downloaded, {size} ({path})").format(size=format_size(path_size(path)), path=path)
        size = self.manager.item(name).size
        if not size:
            return _("not downloaded yet: downloaded on the first run")
        return _("not downloaded yet: {size} to download on the first run").format(size=format_size(size))

    def _on_download_clicked(self) -> None:
        if self.isDownloading():
            self.cancelDownload()
        else:
            self.downloadWeights()

    def _on_download_progress(self, event: Any) -> None:
        if event.total:
            self.downloadProgress.setValue(int(100 * event.fraction))

    def _on_download_finished(self, result: Any) -> None:
        self.downloadProgress.setVisible(False)
        self.downloadButton.setText(self._("Download"))
        if not result.succeeded and not result.cancelled:
            details = "\n".join(result.log_tail[-5:])
            self.show_error(self._("The download failed:") + f"\n{result.error}\n{details}".rstrip())
        self.refresh()
        for callback in list(self.download_finished):
            callback(result)

    def _on_model_changed(self, *args: Any) -> None:
        self.refresh()
        for callback in list(self.model_changed):
            callback(self.model())

    def _ask_license_dialog(self, notice: str) -> bool:
        _ = self._
        answer = qt.QMessageBox.question(
            self,
            _("Weights license"),
            notice + "\n\n" + _("Do you accept this license?"),
            qt.QMessageBox.Yes | qt.QMessageBox.No,
        )
        return answer == qt.QMessageBox.Yes

    def _confirm_dialog(self, text: str) -> bool:
        answer = qt.QMessageBox.question(self, "UniversalSeg", text, qt.QMessageBox.Yes | qt.QMessageBox.No)
        return answer == qt.QMessageBox.Yes

    def _choose_file_dialog(self) -> str:
        result = qt.QFileDialog.getOpenFileName(
            self,
            self._("Import weights"),
            "",
            self._("PyTorch checkpoints (*.pth *.pt *.ckpt);;All files (*)"),
        )
        return result[0] if isinstance(result, tuple) else str(result or "")

    def _error_dialog(self, text: str) -> None:
        qt.QMessageBox.warning(self, "UniversalSeg", text)

    @staticmethod
    def _open_folder(folder: Path) -> None:
        qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(folder)))
