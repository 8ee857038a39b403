"""One CT from file to ``.seg.nrrd`` (``read_image`` → ``segment`` → ``write_segmentation_nrrd``), timed per
stage: the end-to-end run that ``gpu_speed.py`` and ``cpu_stages.py`` both measure.

UniversalSegLib is imported when the function runs, so a caller can first choose which checkout it comes
from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: ``segment``'s own stages (its ``SegmentationResult.timings``).
SEGMENT_STAGES = ("preprocess", "inference", "network", "postprocess", "resample")
#: Every stage of the run, in order, and its total.
STAGES = ("read", *SEGMENT_STAGES, "write", "total")


def file_to_segmentation(
    ct: Path,
    model: Any,
    classes: Sequence[int],
    options: Any,
    output: Path,
    before: Callable[[], None] | None = None,
) -> tuple[dict[str, float], Any]:
    """Seconds per :data:`STAGES` and the ``SegmentationResult`` of one run; ``output`` is replaced.

    ``before`` runs just before the clock starts (a GPU synchronisation, say).
    """
    from UniversalSegLib.inference import segment
    from UniversalSegLib.io import read_image, write_segmentation_nrrd

    if before is not None:
        before()
    start = time.perf_counter()
    image = read_image(ct)
    read = time.perf_counter() - start
    result = segment(image, model, list(classes), options)
    written = time.perf_counter()
    write_segmentation_nrrd(result.masks, output, overwrite=True)
    seconds = {"read": read, **{stage: float(result.timings.get(stage, 0.0)) for stage in SEGMENT_STAGES}}
    seconds["write"] = time.perf_counter() - written
    seconds["total"] = time.perf_counter() - start
    return seconds, result
