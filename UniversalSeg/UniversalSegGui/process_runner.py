"""Run the engine CLI in a background ``QProcess``, parse its progress lines, cancel it cleanly.

On POSIX the process is started through ``setsid`` (when available) so that it leads its own
process group: cancelling sends SIGTERM to the whole group, then SIGKILL after a timeout. On
Windows the process tree is ended with ``taskkill /T``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from UniversalSegLib.progress import ProgressEvent, parse_progress_line

from .qt_compat import byte_array_to_text, process_is_running, qt

DEFAULT_TERMINATE_TIMEOUT_MS = 3000
LOG_TAIL_LINES = 40


@dataclass
class ProcessResult:
    """How a run ended.

    Attributes:
        exit_code: the process exit code (``None`` when it never started or crashed).
        cancelled: the user cancelled the run.
        error: a message when the process could not start or crashed.
        log_tail: the last lines it printed (for error messages).
    """

    exit_code: int | None
    cancelled: bool
    error: str = ""
    log_tail: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return not self.cancelled and not self.error and self.exit_code == 0


class ProcessRunner:
    """Starts one process at a time and reports its output through Python callbacks.

    Callbacks (lists of callables, so that both Qt bindings work without custom signals):
    ``progress_callbacks(event)``, ``log_callbacks(line)``, ``finished_callbacks(result)``.
    """

    def __init__(self, terminate_timeout_ms: int = DEFAULT_TERMINATE_TIMEOUT_MS) -> None:
        self.terminate_timeout_ms = terminate_timeout_ms
        self.progress_callbacks: list[Callable[[ProgressEvent], None]] = []
        self.log_callbacks: list[Callable[[str], None]] = []
        self.finished_callbacks: list[Callable[[ProcessResult], None]] = []
        self.process: Any = None
        self._buffer = ""
        self._tail: list[str] = []
        self._cancelled = False
        self._own_group = False
        self._pid: int | None = None
        self._kill_timer: Any = None
        self._start_error = ""

    # ------------------------------------------------------------------------------------- public
    def start(
        self,
        program: str,
        arguments: Sequence[str],
        environment: Mapping[str, str] | None = None,
        working_directory: str | None = None,
        new_process_group: bool = True,
    ) -> None:
        """Start ``program arguments``; raises ``RuntimeError`` if a run is already going on."""
        if self.isRunning():
            raise RuntimeError("A segmentation is already running; cancel it first.")
        self._buffer, self._tail, self._cancelled, self._start_error = "", [], False, ""
        arguments = [str(a) for a in arguments]
        self._own_group = False
        if new_process_group and os.name == "posix" and shutil.which("setsid"):
            arguments = [program, *arguments]
            program = shutil.which("setsid") or "setsid"
            self._own_group = True
        process = qt.QProcess()
        process.setProcessChannelMode(qt.QProcess.MergedChannels)
        if environment:
            env = qt.QProcessEnvironment.systemEnvironment()
            for key, value in environment.items():
                env.insert(key, str(value))
            process.setProcessEnvironment(env)
        if working_directory:
            process.setWorkingDirectory(str(working_directory))
        process.readyReadStandardOutput.connect(self._on_ready_read)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_error)
        self.process = process
        process.start(program, arguments)
        self._pid = int(process.processId()) or None

    def isRunning(self) -> bool:
        return self.process is not None and process_is_running(self.process)

    def pid(self) -> int | None:
        """Process id of the running process (the group leader on POSIX)."""
        return self._pid

    def cancel(self) -> None:
        """Ask the process (tree) to stop; kill it if it is still there after the timeout."""
        if not self.isRunning():
            return
        self._cancelled = True
        self._signal_tree(hard=False)
        self._kill_timer = qt.QTimer()
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(lambda: self._signal_tree(hard=True))
        self._kill_timer.start(self.terminate_timeout_ms)

    def stop(self, timeout_ms: int = DEFAULT_TERMINATE_TIMEOUT_MS) -> bool:
        """Blocking cancel (scene close, module cleanup): SIGTERM, wait, then SIGKILL. True if it ended."""
        if not self.isRunning():
            return True
        self.cancel()
        if not self.process.waitForFinished(timeout_ms):
            self._signal_tree(hard=True)
            self.process.waitForFinished(timeout_ms)
        qt.QCoreApplication.processEvents()
        return not self.isRunning()

    def waitForFinished(self, timeout_ms: int = -1) -> bool:
        """Block until the process ends (for scripts and tests); True if it ended."""
        if self.process is None:
            return True
        finished = bool(self.process.waitForFinished(timeout_ms))
        qt.QCoreApplication.processEvents()
        return finished or not self.isRunning()

    # ------------------------------------------------------------------------------------ private
    def _signal_tree(self, hard: bool) -> None:
        pid = self._pid
        if pid is None or self.process is None:
            return
        if os.name == "posix":
            sig = signal.SIGKILL if hard else signal.SIGTERM
            if self._own_group and _process_group(pid) == pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, sig)
            if self.isRunning():
                self.process.kill() if hard else self.process.terminate()
            return
        # Windows has no SIGTERM for console processes: end the whole tree at once.
        subprocess.run(
            ["taskkill", "/PID", str(pid), "/T", "/F"],
            capture_output=True,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            check=False,
        )
        if self.isRunning():
            self.process.kill()

    def _on_ready_read(self) -> None:
        if self.process is None:
            return
        self._buffer += byte_array_to_text(self.process.readAllStandardOutput())
        *lines, self._buffer = self._buffer.replace("\r", "\n").split("\n")
        for line in lines:
            self._handle_line(line)

    def _handle_line(self, line: str) -> None:
        if not line.strip():
            return
        event = parse_progress_line(line)
        if event is not None:
            for callback in list(self.progress_callbacks):
                callback(event)
            return
        self._tail = (self._tail + [line])[-LOG_TAIL_LINES:]
        for callback in list(self.log_callbacks):
            callback(line)

    def _on_error(self, error: Any = None) -> None:
        if self.process is not None and error == qt.QProcess.FailedToStart:
            self._start_error = f"Could not start the segmentation process: {self.process.errorString()}"
            self._finish(ProcessResult(None, self._cancelled, self._start_error, self._tail))

    def _on_finished(self, exit_code: Any = None, exit_status: Any = None) -> None:
        self._on_ready_read()
        if self._buffer:
            self._handle_line(self._buffer)
            self._buffer = ""
        if self._cancelled and self._own_group and self._pid is not None:
            # Helpers the engine started may outlive it: end the whole group.
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                os.killpg(self._pid, signal.SIGKILL)
        crashed = exit_status == qt.QProcess.CrashExit
        error = ""
        if crashed and not self._cancelled:
            error = "The segmentation process crashed."
        code = None if crashed else int(exit_code) if exit_code is not None else None
        self._finish(ProcessResult(code, self._cancelled, error, list(self._tail)))

    def _finish(self, result: ProcessResult) -> None:
        if self._kill_timer is not None:
            self._kill_timer.stop()
            self._kill_timer = None
        for callback in list(self.finished_callbacks):
            callback(result)


def _process_group(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError, OSError):
        return None
