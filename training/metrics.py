"""Segmentation metrics: Dice and normalized surface Dice (NSD) with a tolerance in mm."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def dice_score(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice ``2|P∩G| / (|P| + |G|)``; 1.0 when both are empty."""
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    total = int(prediction.sum()) + int(truth.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(prediction, truth).sum()) / total


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a 6-neighbour outside it (the image border counts as outside)."""
    eroded = ndimage.binary_erosion(
        mask, structure=ndimage.generate_binary_structure(mask.ndim, 1), border_value=0
    )
    return mask & ~eroded


def normalized_surface_dice(
    prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float], tolerance_mm: float
) -> float:
    """Fraction of both surfaces lying within ``tolerance_mm`` of the other surface.

    ``NSD = (|S_P ∩ B_G| + |S_G ∩ B_P|) / (|S_P| + |S_G|)`` where ``B_X`` is the tolerance band around
    surface ``S_X``; distances are Euclidean in mm (``spacing`` per axis). 1.0 when both masks are
    empty, 0.0 when exactly one is.
    """
    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    if not prediction.any() and not truth.any():
        return 1.0
    if not prediction.any() or not truth.any():
        return 0.0
    surface_p, surface_g = _surface(prediction), _surface(truth)
    distance_to_g = ndimage.distance_transform_edt(~surface_g, sampling=spacing)
    distance_to_p = ndimage.distance_transform_edt(~surface_p, sampling=spacing)
    close_p = int((distance_to_g[surface_p] <= tolerance_mm).sum())
    close_g = int((distance_to_p[surface_g] <= tolerance_mm).sum())
    return (close_p + close_g) / (int(surface_p.sum()) + int(surface_g.sum()))
