"""Per-organ post-processing of the official pipeline (``organ_post_process``, HEAD version; MODEL_SPEC §3).

Masks are boolean arrays in the 1.5 mm RAS grid, (x, y, z) index order: axis 0 increases toward the
patient's right, axis 2 toward superior. Keys are official class indices (1..32).

Deviation from the official code: when the portal/splenic vein (10) is post-processed with an empty
pancreas (11), the official code raises ``ValueError``; here the vein is left as predicted and a warning
is returned.

The results are the official ones, voxel for voxel (``benchmarks/postprocessing_speed.py`` compares them
with the first, plain implementation's). The rules work in boxes: the largest components come from
:mod:`.components` (which explains how it stays fast), the 5×5×5 closing and dilation from
:mod:`.morphology`. ``workers > 1`` runs the classes in a thread pool. numpy releases the GIL, cc3d does
not; on 2 cores the pool was slower than one thread (each thread's malloc arena faults its temporaries in
again), so one thread is the default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor

import numpy as np

from ..catalog import postprocess_requirements
from ..io.grid import bounding_box
from .components import (
    Crop,
    copy_mask,
    cropped,
    largest_crops,
    largest_of_union,
    shifted,
    to_full,
    union,
    whole_crop,
)
from .morphology import cube_filter

LARGEST_COMPONENT_CLASSES = frozenset([*range(1, 10), 11, 12, 13, 14, *range(18, 26)])
PORTAL_VEIN, PANCREAS = 10, 11
RIGHT_LUNG, LEFT_LUNG = 16, 17
KIDNEY_RIGHT, KIDNEY_LEFT, LIVER = 2, 3, 6
KIDNEY_TUMOR, LIVER_TUMOR = 26, 27
TUMOR_STRUCTURE = np.ones((5, 5, 5), dtype=bool)
_TUMOR_RADIUS = TUMOR_STRUCTURE.shape[0] // 2


def required_classes(indices: Iterable[int]) -> set[int]:
    """Extra classes the post-processing of ``indices`` needs (not already in ``indices``).

    The dependencies are the catalog's (:func:`UniversalSegLib.catalog.postprocess_requirements`), which
    the Slicer checklist also shows to users.
    """
    wanted = {int(index) for index in indices}
    return postprocess_requirements(wanted) - wanted


# --- rules ---------------------------------------------------------------------------------------------


def _lowest_slice(crops: Iterable[Crop]) -> int | None:
    """The lowest z index (axis 2) of the voxels in ``crops``, ``None`` when there are none."""
    lowest = [
        crop.box[2].start + int(hits[0])
        for crop in crops
        if (hits := np.flatnonzero(crop.mask.any(axis=(0, 1)))).size
    ]
    return min(lowest, default=None)


def _cut_below(vein: np.ndarray, pancreas: Iterable[Crop]) -> np.ndarray | None:
    lowest = _lowest_slice(pancreas)
    if lowest is None:
        return None
    cut = copy_mask(vein)
    cut[:, :, :lowest] = False
    return cut


def cut_vein_below_pancreas(vein: np.ndarray, pancreas: np.ndarray) -> np.ndarray | None:
    """The vein with every z-slice below the pancreas's lowest z-slice cleared; ``None`` if no pancreas."""
    return _cut_below(vein, [whole_crop(pancreas)])


def _mean_first_index(component: Crop) -> float:
    """Mean axis-0 index of the component's voxels, bit for bit as ``np.nonzero(full)[0].mean()``.

    The sum of the indices is an exact integer (below 2**53), as numpy's float64 sum of them is.
    """
    per_plane = np.count_nonzero(component.mask, axis=tuple(range(1, component.mask.ndim)))
    planes = np.arange(component.box[0].start, component.box[0].stop, dtype=np.int64)
    return float(int(per_plane @ planes)) / int(per_plane.sum())


def _split_lungs(right: np.ndarray, left: np.ndarray) -> tuple[Crop, Crop] | None:
    components = largest_of_union(right, left, 2)
    if len(components) < 2:
        return None
    first, second = components
    if _mean_first_index(first) < _mean_first_index(second):
        return second, first
    return first, second


def split_lungs(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Right and left lungs from the 2 largest components of their union; ``None`` if fewer than 2.

    The component with the smaller mean x index (toward the patient's left in RAS) is the left lung.
    """
    lungs = _split_lungs(right, left)
    if lungs is None:
        return None
    return to_full(right.shape, [lungs[0]]), to_full(right.shape, [lungs[1]])


def _tumor_region(organ: Crop, shape: tuple[int, ...]) -> Crop | None:
    """Closing then dilation of the organ by the 5×5×5 cube, in a box of the full array of ``shape``."""
    tight = bounding_box(organ.mask)
    if tight is None:
        return None
    margin = 3 * _TUMOR_RADIUS + 1  # the result never reaches the edge of the box (unless clipped there)
    box, inner = [], []
    for s, n in zip(shifted(organ.box, tight), shape, strict=True):
        grown = slice(max(s.start - margin, 0), min(s.stop + margin, n))
        box.append(grown)
        inner.append(slice(s.start - grown.start, s.stop - grown.start))
    padded = np.zeros(tuple(s.stop - s.start for s in box), dtype=bool)
    padded[tuple(inner)] = organ.mask[tight]
    closed = cube_filter(cube_filter(padded, _TUMOR_RADIUS, True), _TUMOR_RADIUS, False)
    return Crop(tuple(box), cube_filter(closed, _TUMOR_RADIUS, True))


def tumor_region(organ: np.ndarray) -> np.ndarray:
    """Binary closing then dilation of ``organ`` with a 5×5×5 cube (border value 0)."""
    crop = cropped(organ)
    region = None if crop is None else _tumor_region(crop, organ.shape)
    return to_full(organ.shape, [] if region is None else [region])


def _restrict_tumor(tumor: np.ndarray, organ: Sequence[Crop]) -> np.ndarray:
    """Tumor voxels inside the closed and dilated organ (its kept components)."""
    region = _tumor_region(union(organ), tumor.shape) if organ else None
    if region is None:
        return np.zeros(tumor.shape, dtype=bool)
    return to_full(tumor.shape, [Crop(region.box, tumor[region.box] & region.mask)])


def restrict_tumor(tumor: np.ndarray, organ: np.ndarray) -> np.ndarray:
    """Tumor voxels inside the closed and dilated organ mask."""
    crop = cropped(organ)
    return _restrict_tumor(tumor, [] if crop is None else [crop])


# --- all classes ---------------------------------------------------------------------------------------


class _InThread(Executor):
    """Runs each submitted call at once, in the calling thread (``workers=1``)."""

    def submit(self, fn: Callable, /, *args: object, **kwargs: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # raised by result(), as from a pool
            future.set_exception(error)
        return future


def postprocess_masks(
    raw: Mapping[int, np.ndarray], warnings: list[str] | None = None, workers: int = 1
) -> dict[int, np.ndarray]:
    """Apply the official rules to every class in ``raw`` (the thresholded predictions).

    Rules need their required classes in ``raw`` (see :func:`required_classes`); a rule whose inputs
    are missing leaves its class as predicted (or zero for a lone left lung, as in the official code).

    Args:
        raw: Official class index -> mask (anything ``np.asarray(mask, bool)`` takes), all the same shape.
        warnings: Notes on rules that could not apply are appended here.
        workers: Threads that process the classes in parallel (see the module's notes on speed).

    Returns:
        A new dict with the same keys (same order) and new boolean arrays.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    masks = {index: np.asarray(raw[index], dtype=bool) for index in raw}
    executor: Executor = ThreadPoolExecutor(min(workers, len(masks) or 1)) if workers > 1 else _InThread()
    with executor:
        futures = _submit_rules(executor, masks)
        out = {index: future.result() for index, future in futures.items()}
    for index in LARGEST_COMPONENT_CLASSES.intersection(out):
        out[index] = out[index][0]
    notes = warnings if warnings is not None else []
    if PORTAL_VEIN in masks:
        vein = out.pop(PORTAL_VEIN)
        if vein is None:
            notes.append("pancreas is empty: portal/splenic vein left as predicted (not cut below pancreas)")
            vein = masks[PORTAL_VEIN].copy()
        out[PORTAL_VEIN] = vein
    if RIGHT_LUNG in masks or LEFT_LUNG in masks:
        lungs = out.pop(RIGHT_LUNG, None)
        if RIGHT_LUNG in masks and lungs is None:
            notes.append("fewer than 2 lung components: both lungs left empty (official rule)")
        shape = next(iter(masks.values())).shape
        if lungs is None:
            lungs = (np.zeros(shape, dtype=bool), np.zeros(shape, dtype=bool))
        for index, lung in zip((RIGHT_LUNG, LEFT_LUNG), lungs, strict=True):
            if index in masks:
                out[index] = lung
    return {index: out[index] for index in raw}


def _submit_rules(executor: Executor, masks: dict[int, np.ndarray]) -> dict[int, Future]:
    """One future per class with its post-processed mask, with three exceptions.

    The largest-component classes' hold ``(mask, kept components)``; the portal vein's is ``None`` when
    the pancreas is empty; both lungs are in one future, ``(right, left)`` under :data:`RIGHT_LUNG` (absent
    without a right lung), ``None`` when their union has fewer than 2 components.
    """
    futures: dict[int, Future] = {}
    if RIGHT_LUNG in masks:  # the largest masks first, so that a pool ends with small tasks
        left = masks[LEFT_LUNG] if LEFT_LUNG in masks else np.zeros_like(masks[RIGHT_LUNG])
        futures[RIGHT_LUNG] = executor.submit(split_lungs, masks[RIGHT_LUNG], left)
    for index in sorted(masks):
        if index in LARGEST_COMPONENT_CLASSES:
            futures[index] = executor.submit(_keep_largest_and_components, masks[index])
        elif index == KIDNEY_TUMOR and KIDNEY_RIGHT in masks and KIDNEY_LEFT in masks:
            futures[index] = executor.submit(
                _kidney_tumor, masks[index], masks[KIDNEY_RIGHT], masks[KIDNEY_LEFT]
            )
        elif index not in (PORTAL_VEIN, RIGHT_LUNG, LEFT_LUNG) and not (
            index == LIVER_TUMOR and LIVER in masks
        ):
            futures[index] = executor.submit(copy_mask, masks[index])
    # Last, so that the tasks they wait for started before them (a pool starts tasks in that order).
    if LIVER_TUMOR in masks and LIVER in masks:
        futures[LIVER_TUMOR] = executor.submit(_liver_tumor, masks[LIVER_TUMOR], futures[LIVER])
    if PORTAL_VEIN in masks:
        futures[PORTAL_VEIN] = executor.submit(_portal_vein, masks[PORTAL_VEIN], futures.get(PANCREAS))
    return futures


def _keep_largest_and_components(mask: np.ndarray) -> tuple[np.ndarray, list[Crop]]:
    components = largest_crops(whole_crop(mask), 1)
    return to_full(mask.shape, components), components


def _kidney_tumor(tumor: np.ndarray, right: np.ndarray, left: np.ndarray) -> np.ndarray:
    kidneys = largest_of_union(right, left, 2)
    return _restrict_tumor(tumor, kidneys)


def _liver_tumor(tumor: np.ndarray, liver: Future) -> np.ndarray:
    return _restrict_tumor(tumor, liver.result()[1])


def _portal_vein(vein: np.ndarray, pancreas: Future | None) -> np.ndarray | None:
    """The vein cut below the post-processed pancreas, as predicted without one, ``None`` if it is empty."""
    if pancreas is None:
        return copy_mask(vein)
    return _cut_below(vein, pancreas.result()[1])
