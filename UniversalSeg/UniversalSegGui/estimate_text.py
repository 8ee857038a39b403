"""The text of the panel's estimate line (Slicer-free, so the screenshot script shows exactly it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .feature_reuse import computed_class_count, requery_seconds
from .progress_view import format_duration
from .time_estimate import estimate_for_speed, gpu_memory_warning


def estimate_text(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    model: str,
    speed: str,
    gpu: tuple[str, int | None] | None = None,
    translate: Callable[[str], str] = str,
    reused_features_for: Sequence[str] | None = None,
) -> str:
    """The estimate line: the time of a re-query, else of a CPU run, else the GPU or its memory warning.

    A run that reuses the image features of the last run gets the re-query time (on a GPU as well: the
    backbone does not run). Otherwise a CPU run gets its estimated time and a GPU run its name, or a
    warning when it has little memory.

    Args:
        dimensions: voxels of the input volume (x, y, z).
        spacing: its spacing in mm, same axis order.
        model: backbone value (``swinunetr`` or ``unet``).
        speed: speed mode value (``faithful``, ``balanced`` or ``fast``).
        gpu: (name, memory in bytes) of the GPU the run will use, or ``None`` for a CPU run.
        translate: Slicer's ``_`` for user-visible strings.
        reused_features_for: the class keys of a run that reuses the image features of the last run
            (:class:`~UniversalSegGui.feature_reuse.FeatureMemory` says when), or ``None``.
    """
    _ = translate
    if reused_features_for is not None:
        windows = estimate_for_speed(
            dimensions, spacing, model, speed, "cpu" if gpu is None else "auto"
        ).windows
        seconds = requery_seconds(windows, computed_class_count(reused_features_for))
        return _("About {duration}: reuses the image features of the last run ({windows} windows).").format(
            duration=format_duration(seconds), windows=windows
        )
    if gpu is None:
        estimate = estimate_for_speed(dimensions, spacing, model, speed, device="cpu")
        return _("Estimated time on CPU: about {duration} ({windows} windows).").format(
            duration=format_duration(estimate.seconds), windows=estimate.windows
        )
    name, memory = gpu
    return gpu_memory_warning(memory, name) or _("GPU: {name}").format(name=name)
