"""The text of the panel's estimate line (Slicer-free, so the screenshot script shows exactly it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .progress_view import format_duration
from .time_estimate import estimate_for_speed, gpu_memory_warning


def estimate_text(
    dimensions: Sequence[int],
    spacing: Sequence[float],
    model: str,
    speed: str,
    gpu: tuple[str, int | None] | None = None,
    translate: Callable[[str], str] = str,
) -> str:
    """Estimated CPU time when no GPU is used, else the GPU's name or a small-memory warning.

    Args:
        dimensions: voxels of the input volume (x, y, z).
        spacing: its spacing in mm, same axis order.
        model: backbone value (``swinunetr`` or ``unet``).
        speed: speed mode value (``faithful``, ``balanced`` or ``fast``).
        gpu: (name, memory in bytes) of the GPU the run will use, or ``None`` for a CPU run.
        translate: Slicer's ``_`` for user-visible strings.
    """
    _ = translate
    if gpu is None:
        estimate = estimate_for_speed(dimensions, spacing, model, speed, device="cpu")
        return _("Estimated time on CPU: about {duration} ({windows} windows).").format(
            duration=format_duration(estimate.seconds), windows=estimate.windows
        )
    name, memory = gpu
    return gpu_memory_warning(memory, name) or _("GPU: {name}").format(name=name)
