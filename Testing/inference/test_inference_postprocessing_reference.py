"""``postprocess_masks`` against a plain full-volume implementation of the official rules (MODEL_SPEC §3).

The reference labels 26-connected components with ``scipy.ndimage.label`` (3×3×3 structure) on the whole
volume, ranks them by voxel count with ties in raster order (the label order of cc3d on C-ordered
arrays), and uses scipy's closing and dilation: no boxes, no pieces, no threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from UniversalSegLib.inference import components
from UniversalSegLib.inference.components import keep_largest, largest_components
from UniversalSegLib.inference.postprocessing import (
    LARGEST_COMPONENT_CLASSES,
    TUMOR_STRUCTURE,
    postprocess_masks,
)

SHAPE = (36, 30, 28)
NEIGHBOURS_26 = np.ones((3, 3, 3), dtype=bool)


def reference_components(mask: np.ndarray, k: int) -> list[np.ndarray]:
    labels, count = ndimage.label(mask, structure=NEIGHBOURS_26)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    return [labels == label for label in np.argsort(-sizes, kind="stable")[:k] + 1]


def reference_keep(mask: np.ndarray, k: int) -> np.ndarray:
    return np.logical_or.reduce([np.zeros(mask.shape, bool), *reference_components(mask, k)])


def reference_tumor(tumor: np.ndarray, organ: np.ndarray) -> np.ndarray:
    closed = ndimage.binary_closing(organ, structure=TUMOR_STRUCTURE, border_value=0)
    return tumor & ndimage.binary_dilation(closed, structure=TUMOR_STRUCTURE, border_value=0)


def reference_postprocess(raw: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """The rules of MODEL_SPEC §3, written for clarity, with this project's empty-pancreas deviation."""
    empty = np.zeros(next(iter(raw.values())).shape, dtype=bool)
    out = {}
    for index, mask in raw.items():
        if index in LARGEST_COMPONENT_CLASSES:
            out[index] = reference_keep(mask, 1)
        elif index == 26 and 2 in raw and 3 in raw:
            out[index] = reference_tumor(mask, reference_keep(raw[2] | raw[3], 2))
        elif index == 27 and 6 in raw:
            out[index] = reference_tumor(mask, reference_keep(raw[6], 1))
        elif index == 10 and 11 in raw:
            pancreas_slices = np.flatnonzero(reference_keep(raw[11], 1).any(axis=(0, 1)))
            out[index] = mask.copy()
            if pancreas_slices.size:
                out[index][:, :, : pancreas_slices[0]] = False
        elif index in (16, 17):
            lungs = reference_components(raw[16] | raw.get(17, empty), 2) if 16 in raw else []
            if len(lungs) < 2:
                out[index] = empty.copy()
            else:
                first, second = lungs  # the smaller mean x is the patient's left
                left, right = (first, second) if _mean_x(first) < _mean_x(second) else (second, first)
                out[index] = right if index == 16 else left
        else:
            out[index] = mask.copy()
    return out


def _mean_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[0].mean())


def blobby(rng: np.random.Generator, shape: tuple[int, ...] = SHAPE, fill: float = 0.12) -> np.ndarray:
    """Smooth random blobs: several components of various sizes, some touching the volume's border."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=float(rng.uniform(1.0, 2.5)))
    return field > np.quantile(field, 1 - fill)


def cube(corner: tuple[int, int, int], side: int, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(c, c + side) for c in corner)] = True
    return mask


def assert_same(expected: dict[int, np.ndarray], actual: dict[int, np.ndarray]) -> None:
    assert list(actual) == list(expected)
    for index in expected:
        assert actual[index].dtype == bool and actual[index].shape == expected[index].shape, index
        np.testing.assert_array_equal(actual[index], expected[index], err_msg=f"class {index}")


@pytest.fixture(params=["pieces of any size", "at most 3 pieces", "default pieces"])
def split_everything(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut even the small test volumes into pieces, as large volumes are (or into a few only)."""
    if request.param != "default pieces":
        monkeypatch.setattr(components, "MIN_SPLIT_VOXELS", 0)
    if request.param == "at most 3 pieces":
        monkeypatch.setattr(components, "MAX_PIECES", 3)


@pytest.mark.usefixtures("split_everything")
@pytest.mark.parametrize("workers", [1, 3])
@pytest.mark.parametrize("seed", range(4))
def test_all_rules_match_the_reference_on_random_blobs(seed: int, workers: int) -> None:
    rng = np.random.default_rng(seed)
    raw = {index: blobby(rng, fill=float(rng.uniform(0.01, 0.2))) for index in range(1, 33)}
    raw[22] = np.zeros(SHAPE, bool)  # an empty class
    raw[8] = np.asfortranarray(raw[8])  # memory order does not matter when sizes differ
    assert_same(reference_postprocess(raw), postprocess_masks(raw, workers=workers))


@pytest.mark.usefixtures("split_everything")
@pytest.mark.parametrize("workers", [1, 2])
def test_equal_sizes_keep_raster_order(workers: int) -> None:
    # a comes first in raster order (smaller x), b first along y: cut into pieces, b's comes first.
    a, b, c = cube((10, 20, 3), 3), cube((11, 2, 20), 3), cube((30, 25, 1), 2)
    raw = {
        1: b | a | c,  # the two largest are equal
        2: cube((28, 3, 3), 4) | c,  # kidneys: the second largest of their union...
        3: cube((3, 3, 20), 3) | cube((10, 20, 10), 3),  # ...is one of these two (the first in raster order)
        26: cube((27, 2, 2), 6) | cube((9, 19, 9), 3) | cube((30, 25, 1), 2),  # kept, dropped, dropped
        6: b | a | c,
        27: blobby(np.random.default_rng(0)),
        16: cube((5, 5, 5), 4),  # lungs: equal sizes and equal mean x, so the label order decides
        17: cube((5, 20, 15), 4),
    }
    assert_same(reference_postprocess(raw), postprocess_masks(raw, workers=workers))
    for k in (1, 2, 3):
        expected = reference_components(raw[1], k)
        actual = largest_components(raw[1], k)
        assert len(actual) == len(expected)
        for left, right in zip(expected, actual, strict=True):
            np.testing.assert_array_equal(left, right)


@pytest.mark.usefixtures("split_everything")
def test_lungs_in_separate_pieces_compare_their_mean_x_in_the_full_grid() -> None:
    wide, narrow = cube((2, 5, 5), 10), cube((20, 5, 5), 3)  # means 6.5 and 21, but 4.5 and 1 in their boxes
    raw = {16: wide, 17: narrow | cube((30, 20, 20), 2)}
    out = postprocess_masks(raw)
    assert_same(reference_postprocess(raw), out)
    np.testing.assert_array_equal(out[17], wide)


@pytest.mark.parametrize("workers", [1, 2])
def test_empty_masks(workers: int) -> None:
    raw = {index: np.zeros(SHAPE, bool) for index in range(1, 33)}
    warnings: list[str] = []
    out = postprocess_masks(raw, warnings, workers=workers)
    assert list(out) == list(raw) and not any(mask.any() for mask in out.values())
    assert all(out[index] is not raw[index] for index in raw)
    assert len(warnings) == 2  # the vein with an empty pancreas; fewer than 2 lung components
    assert (
        not keep_largest(np.zeros(SHAPE, bool), 2).any() and largest_components(np.zeros(SHAPE, bool)) == []
    )


@pytest.mark.usefixtures("split_everything")
def test_keep_largest_on_one_class_matches_reference() -> None:
    rng = np.random.default_rng(7)
    # Components in a row along x, with gaps of various widths: more runs than pieces allowed.
    row = np.logical_or.reduce([cube((x, 3 + x % 7, 2 * (x % 5)), 2 + x % 3) for x in range(0, 33, 5)])
    masks = [
        row,
        row | cube((12, 20, 18), 5),
        *(blobby(rng, fill=float(rng.uniform(0.02, 0.3))) for _ in range(6)),
    ]
    for mask in masks:
        for k in (1, 2, 4):
            np.testing.assert_array_equal(keep_largest(mask, k), reference_keep(mask, k))


def test_workers_must_be_positive() -> None:
    with pytest.raises(ValueError, match="workers"):
        postprocess_masks({1: np.zeros(SHAPE, bool)}, workers=0)
