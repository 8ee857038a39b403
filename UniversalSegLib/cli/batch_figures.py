"""Speed figures of a batch: seconds per stage and windows of each CT, windows/s and CTs/min of a rank.

Per CT (manifest entry and log line): ``read`` and ``preprocess`` run in the prefetch thread, overlapped
with the previous CT's network work (``preprocess`` also counts ``segment``'s own check of the prepared
image); ``inference`` is the sliding window, ``network`` the part of it inside the model's forward passes;
then ``postprocess``, ``resample`` and ``write``. A CT's windows/s is its windows over its ``inference``
seconds (how fast the sliding window ran); ``waited`` is how long the main thread waited for the prefetch
thread (0 when reading and preprocessing were fully hidden). A rank's windows/s and CTs/min are over the
wall time from its first read to its last write (model loading excluded), so they include everything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

#: Where a CT of a batch can fail (a manifest entry's ``stage``, the failure's wording).
STAGE_READ, STAGE_PREPROCESS, STAGE_SEGMENT, STAGE_WRITE = "read", "preprocess", "segment", "write"
#: What ``segment``'s timings add to the figures (its ``preprocess`` is only the check of a prepared CT).
SEGMENT_STAGES = (STAGE_PREPROCESS, "inference", "network", "postprocess", "resample")
#: The timed stages of one CT, in the order they run.
STAGES = (STAGE_READ, *SEGMENT_STAGES, STAGE_WRITE)


def per_second(count: float, seconds: float) -> float:
    """``count / seconds``, 0 when no time was measured."""
    return count / seconds if seconds > 0 else 0.0


@dataclass
class CtFigures:
    """Seconds per stage and windows of one CT."""

    seconds: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    waited: float = 0.0

    def add(self, timings: Mapping[str, float], stages: tuple[str, ...] = STAGES) -> None:
        """Add ``timings``' seconds of ``stages`` (missing ones count 0)."""
        for stage in stages:
            if stage in timings:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + float(timings[stage])

    @property
    def windows_per_second(self) -> float:
        """Windows over the sliding window's seconds."""
        return per_second(self.windows, self.seconds.get("inference", 0.0))

    def manifest_fields(self) -> dict[str, object]:
        """``stage_seconds``, ``windows``, ``windows_per_second``, ``waited_seconds`` (rounded)."""
        stage_seconds = {stage: round(self.seconds[stage], 3) for stage in STAGES if stage in self.seconds}
        return {
            "stage_seconds": stage_seconds,
            "windows": self.windows,
            "windows_per_second": round(self.windows_per_second, 2),
            "waited_seconds": round(self.waited, 3),
        }

    def stage_text(self) -> str:
        """``read 0.1, preprocess 1.5, inference 6.0 (network 5.1), ..., write 0.3 s``."""
        parts = []
        for stage in STAGES:
            if stage == "network" or stage not in self.seconds:
                continue
            text = f"{stage} {self.seconds[stage]:.1f}"
            if stage == "inference" and "network" in self.seconds:
                text += f" (network {self.seconds['network']:.1f})"
            parts.append(text)
        return ", ".join(parts) + " s" if parts else ""


def speed_text(windows: int, done: int, milliseconds: int) -> str:
    """``240 windows in 12.3 s: 19.5 windows/s, 14.6 CTs/min`` (empty when nothing was segmented)."""
    seconds = milliseconds / 1000.0
    if done <= 0 or seconds <= 0:
        return ""
    return (
        f"{windows} windows in {seconds:.1f} s: {per_second(windows, seconds):.1f} windows/s, "
        f"{per_second(done, seconds / 60.0):.1f} CTs/min"
    )
