"""Segment/Cancel button, progress bar, status line and log, driven by a run state machine.

:class:`RunController` connects a :class:`RunPanel` to a *job*: any object with ``start(...)``,
``cancel()`` and the callback lists ``progress_callbacks``, ``log_callbacks`` and
``finished_callbacks`` (a :class:`~UniversalSegGui.process_runner.ProcessRunner` or a
:class:`~UniversalSegGui.segmentation_job.SegmentationJob`). Finished results need ``cancelled``,
``error``, ``succeeded`` and ``log_tail``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .progress_view import overall_percent, status_text
from .qt_compat import qt
from .run_state import RunState, RunStateMachine

MAX_LOG_LINES = 2000


class RunPanel(qt.QWidget):
    """The widgets of a run; it shows state, it does not decide anything."""

    def __init__(self, parent: Any = None, translate: Callable[[str], str] = str) -> None:
        super().__init__(parent)
        _ = self._ = translate
        layout = qt.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.segmentButton = qt.QPushButton(_("Segment"))
        self.segmentButton.setToolTip(_("Run the segmentation; click again to cancel it"))
        self.segmentButton.setMinimumHeight(32)
        layout.addWidget(self.segmentButton)
        self.progressBar = qt.QProgressBar()
        self.progressBar.setRange(0, 100)
        self.progressBar.setValue(0)
        self.progressBar.setVisible(False)
        layout.addWidget(self.progressBar)
        self.statusLabel = qt.QLabel()
        self.statusLabel.setWordWrap(True)
        layout.addWidget(self.statusLabel)
        self.logEdit = qt.QPlainTextEdit()
        self.logEdit.setReadOnly(True)
        self.logEdit.setMaximumBlockCount(MAX_LOG_LINES)
        self.logEdit.setMaximumHeight(120)
        self.logEdit.setToolTip(_("Messages of the segmentation process"))
        layout.addWidget(self.logEdit)

    def showState(self, machine: RunStateMachine, inputs_ready: bool) -> None:
        self.segmentButton.setText(machine.button_text(self._))
        self.segmentButton.setEnabled(machine.button_enabled(inputs_ready))
        self.progressBar.setVisible(machine.busy)

    def showProgress(self, event: Any) -> None:
        percent = overall_percent(event)
        if percent is not None:
            self.progressBar.setValue(percent)
        self.statusLabel.setText(status_text(event, self._))

    def setStatus(self, text: str) -> None:
        self.statusLabel.setText(text)

    def appendLog(self, line: str) -> None:
        self.logEdit.appendPlainText(line)


class RunController:
    """Drives a :class:`RunPanel` from a job's callbacks and the user's clicks."""

    def __init__(self, panel: RunPanel, job: Any, translate: Callable[[str], str] = str) -> None:
        self.panel = panel
        self.job = job
        self._ = translate
        self.state = RunStateMachine()
        self.inputs_ready = False
        #: Callables run when the user clicks Segment while idle (they call :meth:`start`).
        self.segment_requested: list[Callable[[], None]] = []
        #: Callables run with the job's result when a run ends.
        self.finished: list[Callable[[Any], None]] = []
        self.state.listeners.append(lambda state: self._refresh())
        panel.segmentButton.clicked.connect(self._on_button_clicked)
        job.progress_callbacks.append(self._on_progress)
        job.log_callbacks.append(panel.appendLog)
        job.finished_callbacks.append(self._on_finished)
        self._refresh()

    def setInputsReady(self, ready: bool) -> None:
        self.inputs_ready = bool(ready)
        self._refresh()

    def start(self, *args: Any, **kwargs: Any) -> bool:
        """Start the job (arguments go to ``job.start``); False if it could not start."""
        if self.state.busy:
            return False
        self.state.go(RunState.PREPARING)
        self.panel.progressBar.setValue(0)
        self.panel.setStatus(self._("Starting..."))
        try:
            self.job.start(*args, **kwargs)
        except Exception as error:
            self.state.go(RunState.IDLE)
            self.panel.setStatus(self._("Could not start: {error}").format(error=error))
            self.panel.appendLog(str(error))
            return False
        if self.state.state == RunState.PREPARING:  # a job can end synchronously (start failure)
            self.state.go(RunState.RUNNING)
        return True

    def cancel(self) -> None:
        if not self.state.can_cancel:
            return
        self.state.go(RunState.CANCELLING)
        self.panel.setStatus(self._("Cancelling..."))
        self.job.cancel()

    def _on_button_clicked(self, *args: Any) -> None:
        if self.state.state == RunState.IDLE:
            for callback in list(self.segment_requested):
                callback()
        else:
            self.cancel()

    def _on_progress(self, event: Any) -> None:
        if self.state.state == RunState.CANCELLING:
            return
        if event.stage == "import" and self.state.state == RunState.RUNNING:
            self.state.go(RunState.IMPORTING)
        self.panel.showProgress(event)

    def _on_finished(self, result: Any) -> None:
        _ = self._
        if result.cancelled:
            self.panel.setStatus(_("Cancelled."))
        elif result.error or not result.succeeded:
            message = result.error or _("The segmentation process failed (exit code {code}).").format(
                code=getattr(result, "exit_code", "?")
            )
            self.panel.setStatus(message)
            self.panel.appendLog(message)
        else:
            self.panel.progressBar.setValue(100)
            self.panel.setStatus(_("Done."))
        self.state.go(RunState.IDLE)
        for callback in list(self.finished):
            callback(result)

    def _refresh(self) -> None:
        self.panel.showState(self.state, self.inputs_ready)
