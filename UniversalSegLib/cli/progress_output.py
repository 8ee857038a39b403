"""Show :class:`~UniversalSegLib.progress.ProgressEvent` objects: JSON lines, a tqdm bar, or log lines.

Modes:
    ``json``: one ``UNIVERSALSEG_PROGRESS {...}`` line per event on stdout (flushed), for the Slicer module.
    ``bar``: a tqdm bar per stage on stderr (the default when stderr is a terminal).
    ``log``: a log line when a stage starts, then at most every 2 s at a new 10 % step (the default
        otherwise).
    ``none``: nothing.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from UniversalSegLib.progress import ProgressEvent

logger = logging.getLogger("UniversalSegLib.cli")

PROGRESS_MODES: tuple[str, ...] = ("bar", "json", "none")

#: In ``log`` mode, at most one percentage line per stage every this many seconds.
LOG_INTERVAL_S = 2.0


def default_mode(requested: str | None, stderr: TextIO | None = None) -> str:
    """The mode to use: the requested one, else ``bar`` on a terminal and ``log`` otherwise."""
    if requested:
        return requested
    stream = stderr or sys.stderr
    return "bar" if getattr(stream, "isatty", lambda: False)() else "log"


class ProgressPrinter:
    """A progress callback that renders events in one of the modes above; call :meth:`close` at the end."""

    def __init__(self, mode: str, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.mode = mode
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self._stage = ""
        self._bar = None
        self._last_decile = 0
        self._last_log = 0.0

    def __call__(self, event: ProgressEvent) -> None:
        if self.mode == "json":
            print(event.to_json_line(), file=self.stdout, flush=True)
        elif self.mode == "bar":
            self._show_bar(event)
        elif self.mode == "log":
            self._show_log(event)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _show_bar(self, event: ProgressEvent) -> None:
        if event.stage != self._stage:
            self.close()
            self._stage = event.stage
            if event.total:
                from tqdm import tqdm

                is_bytes = event.stage == "download"
                self._bar = tqdm(
                    total=event.total,
                    desc=(event.message or event.stage) if is_bytes else event.stage,
                    file=self.stderr,
                    unit="B" if is_bytes else "it",
                    unit_scale=is_bytes,
                    unit_divisor=1024,
                    leave=False,
                )
            elif event.message:
                logger.info("%s: %s", event.stage, event.message)
        if self._bar is not None:
            if event.total and self._bar.total != event.total:
                self._bar.total = event.total
            self._bar.n = event.done
            self._bar.refresh()

    def _show_log(self, event: ProgressEvent) -> None:
        now = time.perf_counter()
        if event.stage != self._stage or (event.message and event.done == 0):
            self._stage, self._last_decile, self._last_log = event.stage, 0, now
            logger.info("%s%s", event.stage, f": {event.message}" if event.message else "")
            return
        if event.total > 1 and now - self._last_log >= LOG_INTERVAL_S:
            decile = int(10 * event.fraction)
            if decile > self._last_decile:
                self._last_decile, self._last_log = decile, now
                eta = f", about {event.eta:.0f} s left" if event.eta else ""
                logger.info("%s %d%% (%d/%d)%s", event.stage, 10 * decile, event.done, event.total, eta)
