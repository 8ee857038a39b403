"""Progress events shared by the engine, the CLI and the Slicer module.

The engine reports progress through a callback that receives :class:`ProgressEvent`
objects. The CLI turns them into a tqdm bar on a terminal, or into one JSON object per
line (``--progress json``) that the Slicer module parses with :func:`parse_progress_line`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

#: Stages in the order a segmentation run goes through them.
STAGES: tuple[str, ...] = (
    "load",
    "preprocess",
    "compile",
    "inference",
    "postprocess",
    "resample",
    "write",
    "done",
)

PROGRESS_PREFIX = "UNIVERSALSEG_PROGRESS "


@dataclass
class ProgressEvent:
    """One progress report.

    Attributes:
        stage: one of :data:`STAGES` (other strings are allowed, e.g. ``"download"``).
        done: units of work finished in this stage (e.g. sliding windows).
        total: units of work in this stage; 0 when unknown.
        elapsed: seconds since the run started.
        eta: estimated seconds left in the whole run, or ``None`` when unknown.
        message: optional human-readable text.
    """

    stage: str
    done: int = 0
    total: int = 0
    elapsed: float = 0.0
    eta: float | None = None
    message: str = ""

    @property
    def fraction(self) -> float:
        """Fraction of this stage that is done, in [0, 1]."""
        return min(1.0, self.done / self.total) if self.total else 0.0

    def to_json_line(self) -> str:
        """The event as one line: the prefix then a JSON object."""
        return PROGRESS_PREFIX + json.dumps(asdict(self), separators=(",", ":"))


ProgressCallback = Callable[[ProgressEvent], None]


def parse_progress_line(line: str) -> ProgressEvent | None:
    """Parse a line printed with ``--progress json``; ``None`` for any other line."""
    line = line.strip()
    if not line.startswith(PROGRESS_PREFIX):
        return None
    try:
        data = json.loads(line[len(PROGRESS_PREFIX) :])
        return ProgressEvent(**{k: data[k] for k in data if k in ProgressEvent.__dataclass_fields__})
    except (ValueError, TypeError, KeyError):
        return None


@dataclass
class ProgressReporter:
    """Turns (stage, done, total) calls into timed :class:`ProgressEvent` objects.

    The ETA is extrapolated from the rate of the current stage when it reports a total.
    """

    callback: ProgressCallback | None = None
    start_time: float = field(default_factory=time.perf_counter)
    _stage_start: float = field(default=0.0, init=False)
    _stage: str = field(default="", init=False)
    stage_seconds: dict[str, float] = field(default_factory=dict, init=False)

    def __call__(self, stage: str, done: int = 0, total: int = 0, message: str = "") -> None:
        now = time.perf_counter()
        if stage != self._stage:
            if self._stage:
                self.stage_seconds[self._stage] = now - self._stage_start
            self._stage, self._stage_start = stage, now
        eta = None
        if total and done:
            eta = (now - self._stage_start) / done * (total - done)
        if self.callback is not None:
            self.callback(ProgressEvent(stage, done, total, now - self.start_time, eta, message))
