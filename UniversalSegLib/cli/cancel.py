"""SIGTERM/SIGINT handling: set a cancel event the library polls, instead of dying mid-write."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def cancel_on_signals() -> Iterator[threading.Event]:
    """Yield an event that SIGTERM or SIGINT sets; a second SIGINT raises ``KeyboardInterrupt``.

    Handlers are only installed in the main thread; the previous handlers are restored on exit.
    """
    cancel = threading.Event()

    def handle(signum: int, frame) -> None:  # noqa: ARG001 (signal handler signature)
        if signum == signal.SIGINT and cancel.is_set():
            raise KeyboardInterrupt
        logger.warning("Cancelling (%s): stopping at the next checkpoint...", signal.Signals(signum).name)
        cancel.set()

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, handle)
    try:
        yield cancel
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
