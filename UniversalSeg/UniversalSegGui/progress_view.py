"""Turn engine progress events into a progress-bar value and a status line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: Share of the whole run that each stage takes (rough; inference dominates).
STAGE_WEIGHTS: dict[str, float] = {
    "load": 0.05,
    "preprocess": 0.10,
    "compile": 0.0,
    "inference": 0.70,
    "postprocess": 0.08,
    "resample": 0.05,
    "write": 0.02,
}
STAGE_TITLES: dict[str, str] = {
    "download": "Downloading weights",
    "load": "Loading",
    "preprocess": "Preprocessing",
    "compile": "Preparing the fast CPU engine (once per model)",
    "inference": "Segmenting",
    "postprocess": "Post-processing",
    "resample": "Resampling to the input grid",
    "write": "Writing the result",
    "import": "Loading the result into the scene",
    "done": "Done",
}
#: Stages that report a note rather than a step of the run (the image-feature cache: reused at the start,
#: stored at the end); they leave the progress bar where it is and show only their message.
NOTE_STAGES = frozenset({"features"})


def overall_percent(event: Any) -> int | None:
    """Whole-run progress in percent (0..100) for a :class:`~UniversalSegLib.progress.ProgressEvent`.

    ``None`` for a note (:data:`NOTE_STAGES`): the bar stays where it is.
    """
    if event.stage in NOTE_STAGES:
        return None
    if event.stage == "done":
        return 100
    if event.stage == "import":
        return 99
    if event.stage not in STAGE_WEIGHTS:
        return int(round(100 * event.fraction))
    before = 0.0
    for stage, weight in STAGE_WEIGHTS.items():
        if stage == event.stage:
            return int(round(100 * (before + weight * event.fraction)))
        before += weight
    return 0  # pragma: no cover - the loop always returns


def format_duration(seconds: float) -> str:
    """``75`` -> ``"1 min 15 s"``; ``3725`` -> ``"1 h 2 min"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def status_text(event: Any, translate: Callable[[str], str] = str) -> str:
    """One status line: stage, windows done/total, time left; a note's message alone."""
    _ = translate
    if event.stage in NOTE_STAGES and event.message:
        return event.message[:1].upper() + event.message[1:]
    text = _(STAGE_TITLES.get(event.stage, event.stage.capitalize()))
    if event.total:
        unit = _("window") if event.stage == "inference" else _("step")
        text += f" ({unit} {event.done}/{event.total})"
    if event.eta is not None and event.stage != "done":
        text += " - " + _("about {duration} left").format(duration=format_duration(event.eta))
    if event.message:
        text += f": {event.message}"
    return text
