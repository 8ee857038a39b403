"""Per-organ post-processing of the official pipeline (``organ_post_process``, HEAD version; MODEL_SPEC §3).

Masks are boolean arrays in the 1.5 mm RAS grid, (x, y, z) index order: axis 0 increases toward the
patient's right, axis 2 toward superior. Keys are official class indices (1..32).

Deviation from the official code: when the portal/splenic vein (10) is post-processed with an empty
pancreas (11), the official code raises ``ValueError``; here the vein is left as predicted and a warning
is returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import cc3d
import numpy as np
from scipy import ndimage

from ..catalog import postprocess_requirements

LARGEST_COMPONENT_CLASSES = frozenset([*range(1, 10), 11, 12, 13, 14, *range(18, 26)])
PORTAL_VEIN, PANCREAS = 10, 11
RIGHT_LUNG, LEFT_LUNG = 16, 17
KIDNEY_RIGHT, KIDNEY_LEFT, LIVER = 2, 3, 6
KIDNEY_TUMOR, LIVER_TUMOR = 26, 27
TUMOR_STRUCTURE = np.ones((5, 5, 5), dtype=bool)


def required_classes(indices: Iterable[int]) -> set[int]:
    """Extra classes the post-processing of ``indices`` needs (not already in ``indices``).

    The dependencies are the catalog's (:func:`UniversalSegLib.catalog.postprocess_requirements`), which
    the Slicer checklist also shows to users.
    """
    wanted = {int(index) for index in indices}
    return postprocess_requirements(wanted) - wanted


def _bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the bounding box of ``mask`` grown by ``margin`` (clipped), ``None`` when empty."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        box.append(slice(max(hits[0] - margin, 0), min(hits[-1] + 1 + margin, mask.shape[axis])))
    return tuple(box)


def largest_components(mask: np.ndarray, k: int = 1) -> list[np.ndarray]:
    """The ``k`` largest 26-connected components of ``mask``, largest first (ties: label order).

    Each is a full-size boolean array; fewer than ``k`` are returned when there are fewer.
    """
    box = _bounding_box(mask)
    if box is None:
        return []
    labels, count = cc3d.connected_components(mask[box], connectivity=26, return_N=True)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-sizes, kind="stable")[:k] + 1
    components = []
    for label in order:
        component = np.zeros(mask.shape, dtype=bool)
        component[box] = labels == label
        components.append(component)
    return components


def keep_largest(mask: np.ndarray, k: int = 1) -> np.ndarray:
    """Union of the ``k`` largest 26-connected components of ``mask``."""
    kept = np.zeros(mask.shape, dtype=bool)
    for component in largest_components(mask, k):
        kept |= component
    return kept


def cut_vein_below_pancreas(vein: np.ndarray, pancreas: np.ndarray) -> np.ndarray | None:
    """The vein with every z-slice below the pancreas's lowest z-slice cleared; ``None`` if no pancreas."""
    slices = np.flatnonzero(pancreas.any(axis=(0, 1)))
    if slices.size == 0:
        return None
    cut = vein.copy()
    cut[:, :, : slices[0]] = False
    return cut


def split_lungs(right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Right and left lungs from the 2 largest components of their union; ``None`` if fewer than 2.

    The component with the smaller mean x index (toward the patient's left in RAS) is the left lung.
    """
    components = largest_components(right | left, k=2)
    if len(components) < 2:
        return None
    mean_x = [np.nonzero(c)[0].mean() for c in components]
    left_lung, right_lung = components if mean_x[0] < mean_x[1] else components[::-1]
    return right_lung, left_lung


def tumor_region(organ: np.ndarray) -> np.ndarray:
    """Binary closing then dilation of ``organ`` with a 5×5×5 cube (border value 0)."""
    margin = 3 * (TUMOR_STRUCTURE.shape[0] // 2) + 1  # exact: the result never reaches the crop edge
    box = _bounding_box(organ, margin)
    region = np.zeros(organ.shape, dtype=bool)
    if box is None:
        return region
    closed = ndimage.binary_closing(organ[box], structure=TUMOR_STRUCTURE, iterations=1, border_value=0)
    region[box] = ndimage.binary_dilation(closed, structure=TUMOR_STRUCTURE, iterations=1, border_value=0)
    return region


def restrict_tumor(tumor: np.ndarray, organ: np.ndarray) -> np.ndarray:
    """Tumor voxels inside the closed and dilated organ mask."""
    return tumor & tumor_region(organ)


def postprocess_masks(
    raw: Mapping[int, np.ndarray], warnings: list[str] | None = None
) -> dict[int, np.ndarray]:
    """Apply the official rules to every class in ``raw`` (the thresholded predictions).

    Rules need their required classes in ``raw`` (see :func:`required_classes`); a rule whose inputs
    are missing leaves its class as predicted (or zero for a lone left lung, as in the official code).

    Returns:
        A new dict with the same keys, boolean arrays.
    """
    out: dict[int, np.ndarray] = {}
    notes = warnings if warnings is not None else []
    for index in sorted(raw):
        mask = np.asarray(raw[index], dtype=bool)
        if index in LARGEST_COMPONENT_CLASSES:
            out[index] = keep_largest(mask, 1)
        elif index == KIDNEY_TUMOR and KIDNEY_RIGHT in raw and KIDNEY_LEFT in raw:
            both = np.asarray(raw[KIDNEY_RIGHT], bool) | np.asarray(raw[KIDNEY_LEFT], bool)
            kidneys = keep_largest(both, 2)
            out[index] = restrict_tumor(mask, kidneys)
        elif index == LIVER_TUMOR and LIVER in raw:
            out[index] = restrict_tumor(mask, keep_largest(np.asarray(raw[LIVER], bool), 1))
        elif index not in (PORTAL_VEIN, RIGHT_LUNG, LEFT_LUNG):
            out[index] = mask.copy()
    if PORTAL_VEIN in raw:
        vein = np.asarray(raw[PORTAL_VEIN], dtype=bool)
        cut = cut_vein_below_pancreas(vein, out[PANCREAS]) if PANCREAS in out else vein.copy()
        if cut is None:
            notes.append("pancreas is empty: portal/splenic vein left as predicted (not cut below pancreas)")
            cut = vein.copy()
        out[PORTAL_VEIN] = cut
    if RIGHT_LUNG in raw or LEFT_LUNG in raw:
        shape = next(iter(raw.values())).shape
        empty = np.zeros(shape, dtype=bool)
        lungs = None
        if RIGHT_LUNG in raw:
            left = np.asarray(raw.get(LEFT_LUNG, empty), bool)
            lungs = split_lungs(np.asarray(raw[RIGHT_LUNG], bool), left)
            if lungs is None:
                notes.append("fewer than 2 lung components: both lungs left empty (official rule)")
        right_lung, left_lung = lungs if lungs is not None else (empty, empty.copy())
        for index, lung in ((RIGHT_LUNG, right_lung), (LEFT_LUNG, left_lung)):
            if index in raw:
                out[index] = lung
    return {index: out[index] for index in raw}
