"""Load the next CT of a batch in a background thread while the current one is segmented.

The batch's ``load`` reads and preprocesses (:mod:`~UniversalSegLib.cli.batch_loading`). At most one CT is
loaded ahead (the thread waits until the consumer has taken the previous one), so a batch holds at most two
CTs in memory. A failed load is handed over as the exception, for the consumer to report; the thread never
writes anything, so stopping it early (cancel, failure) leaves no file behind.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Loaded = TypeVar("Loaded")

#: How often a waiting thread looks at the stop and cancel events.
POLL_S = 0.1


@dataclass
class Prefetched(Generic[Item, Loaded]):
    """One item with what ``load`` returned for it, or the exception it raised, and the seconds it took."""

    item: Item
    value: Loaded | None
    error: Exception | None
    seconds: float


class Prefetcher(Generic[Item, Loaded]):
    """Iterate over ``items`` as :class:`Prefetched`, ``load``-ing the next one in a background thread.

    Use it as a context manager: leaving the block stops the thread (a read in progress finishes in the
    background and is dropped).
    """

    def __init__(
        self, items: Sequence[Item], load: Callable[[Item], Loaded], cancel: threading.Event | None = None
    ) -> None:
        self._items = list(items)
        self._load = load
        self._cancel = cancel or threading.Event()
        self._stop = threading.Event()
        self._slot = threading.Semaphore(1)  # taken while one loaded item waits for the consumer
        self._ready: queue.Queue[Prefetched[Item, Loaded]] = queue.Queue(maxsize=1)
        self._thread = threading.Thread(target=self._work, name="universalseg-prefetch", daemon=True)

    def __enter__(self) -> Prefetcher[Item, Loaded]:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._slot.release()  # wake a thread that waits for a slot
        self._thread.join(timeout=POLL_S * 2)

    def __iter__(self) -> Iterator[Prefetched[Item, Loaded]]:
        for _ in self._items:
            while True:
                if self._cancel.is_set() or self._stop.is_set():
                    return
                try:
                    loaded = self._ready.get(timeout=POLL_S)
                    break
                except queue.Empty:
                    continue
            self._slot.release()  # the thread may read the next one while the caller works on this one
            yield loaded

    def _stopped(self) -> bool:
        return self._stop.is_set() or self._cancel.is_set()

    def _work(self) -> None:
        for item in self._items:
            while not self._slot.acquire(timeout=POLL_S):
                if self._stopped():
                    return
            if self._stopped():
                return
            start = time.perf_counter()
            try:
                loaded = Prefetched(item, self._load(item), None, 0.0)
            except Exception as exc:  # noqa: BLE001 - handed to the consumer, who reports it
                loaded = Prefetched(item, None, exc, 0.0)
            loaded.seconds = time.perf_counter() - start
            self._ready.put(loaded)
