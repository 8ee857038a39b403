"""Each official post-processing rule on crafted masks (x, y, z arrays in the RAS model grid)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from UniversalSegLib.inference.components import keep_largest, largest_components
from UniversalSegLib.inference.postprocessing import (
    TUMOR_STRUCTURE,
    postprocess_masks,
    required_classes,
    tumor_region,
)

SHAPE = (40, 30, 30)


def _box(*slices: slice) -> np.ndarray:
    mask = np.zeros(SHAPE, dtype=bool)
    mask[slices] = True
    return mask


def test_largest_component_uses_26_connectivity() -> None:
    big = _box(slice(2, 8), slice(2, 8), slice(2, 8))
    small = _box(slice(20, 22), slice(20, 22), slice(20, 22))
    corner_touching = _box(slice(8, 10), slice(8, 10), slice(8, 10))  # touches big only at a corner
    kept = keep_largest(big | small | corner_touching)
    np.testing.assert_array_equal(kept, big | corner_touching)
    assert len(largest_components(big | small, 5)) == 2
    assert not keep_largest(np.zeros(SHAPE, bool)).any()


@pytest.mark.parametrize("index", [1, 5, 6, 9, 11, 12, 14, 18, 25])
def test_organs_keep_their_largest_component(index: int) -> None:
    big, small = _box(slice(2, 9), slice(2, 9), slice(2, 9)), _box(slice(30, 32), slice(5, 7), slice(5, 7))
    out = postprocess_masks({index: big | small})
    np.testing.assert_array_equal(out[index], big)


@pytest.mark.parametrize("index", [15, 28, 29, 30, 31, 32])
def test_other_classes_stay_raw(index: int) -> None:
    raw = _box(slice(2, 9), slice(2, 9), slice(2, 9)) | _box(slice(30, 32), slice(5, 7), slice(5, 7))
    np.testing.assert_array_equal(postprocess_masks({index: raw})[index], raw)


def test_portal_vein_cut_below_post_processed_pancreas() -> None:
    pancreas = _box(slice(10, 20), slice(10, 20), slice(12, 18))
    stray = _box(slice(30, 31), slice(2, 3), slice(3, 4))  # removed by the largest-component rule
    vein = _box(slice(5, 8), slice(5, 8), slice(0, 30))
    out = postprocess_masks({10: vein, 11: pancreas | stray})
    np.testing.assert_array_equal(out[11], pancreas)
    np.testing.assert_array_equal(out[10], _box(slice(5, 8), slice(5, 8), slice(12, 30)))
    np.testing.assert_array_equal(postprocess_masks({10: vein})[10], vein)  # no pancreas selected: raw


def test_portal_vein_with_empty_pancreas_is_left_raw() -> None:
    vein = _box(slice(5, 8), slice(5, 8), slice(0, 30))
    warnings: list[str] = []
    out = postprocess_masks({10: vein, 11: np.zeros(SHAPE, bool)}, warnings)
    np.testing.assert_array_equal(out[10], vein)
    assert not out[11].any()
    assert any("pancreas" in w for w in warnings)


def test_lungs_split_by_ras_x() -> None:
    patient_left = _box(slice(2, 12), slice(5, 25), slice(5, 25))  # smaller x = patient left in RAS
    patient_right = _box(slice(25, 38), slice(5, 25), slice(5, 25))
    crumb = _box(slice(18, 19), slice(0, 1), slice(0, 1))
    # The network swapped them and split the right lung between channels: the rule fixes it.
    raw = {16: patient_left | crumb, 17: patient_right}
    out = postprocess_masks(raw)
    np.testing.assert_array_equal(out[17], patient_left)
    np.testing.assert_array_equal(out[16], patient_right)
    only_one = postprocess_masks({16: patient_left, 17: np.zeros(SHAPE, bool)}, warnings := [])
    assert not only_one[16].any() and not only_one[17].any() and warnings


def test_left_lung_alone_stays_empty_as_official() -> None:
    out = postprocess_masks({17: _box(slice(2, 12), slice(5, 25), slice(5, 25))})
    assert not out[17].any()


def test_liver_tumor_restricted_to_dilated_raw_liver() -> None:
    liver = _box(slice(5, 20), slice(5, 20), slice(5, 20))
    liver_islet = _box(slice(32, 36), slice(22, 26), slice(22, 26))  # not the largest: excluded
    inside = _box(slice(10, 12), slice(10, 12), slice(10, 12))
    near = _box(slice(21, 22), slice(10, 12), slice(10, 12))  # 1 voxel outside: within the dilation
    far = _box(slice(26, 28), slice(10, 12), slice(10, 12))
    on_islet = _box(slice(33, 35), slice(23, 25), slice(23, 25))
    out = postprocess_masks({6: liver | liver_islet, 27: inside | near | far | on_islet})
    np.testing.assert_array_equal(out[27], inside | near)
    np.testing.assert_array_equal(out[6], liver)


def test_kidney_tumor_uses_two_largest_kidney_components() -> None:
    right = _box(slice(3, 10), slice(5, 15), slice(5, 15))
    left = _box(slice(25, 32), slice(5, 15), slice(5, 15))
    islet = _box(slice(18, 19), slice(25, 27), slice(25, 27))
    tumors = _box(slice(5, 7), slice(8, 10), slice(8, 10)) | _box(slice(27, 29), slice(8, 10), slice(8, 10))
    stray = _box(slice(18, 19), slice(25, 26), slice(25, 26))
    # Right-kidney voxels predicted in the left channel do not matter: the union is used.
    out = postprocess_masks({2: right | islet, 3: left, 26: tumors | stray})
    np.testing.assert_array_equal(out[26], tumors)


def test_tumor_region_equals_full_volume_scipy() -> None:
    rng = np.random.default_rng(1)
    organ = ndimage.binary_opening(rng.random(SHAPE) > 0.6, iterations=1)
    organ[:, :, :3] |= rng.random((40, 30, 3)) > 0.5  # touches the array border
    closed = ndimage.binary_closing(organ, structure=TUMOR_STRUCTURE, border_value=0)
    expected = ndimage.binary_dilation(closed, structure=TUMOR_STRUCTURE, border_value=0)
    np.testing.assert_array_equal(tumor_region(organ), expected)
    small = _box(slice(15, 19), slice(12, 15), slice(12, 16))
    closed = ndimage.binary_closing(small, structure=TUMOR_STRUCTURE, border_value=0)
    expected = ndimage.binary_dilation(closed, structure=TUMOR_STRUCTURE, border_value=0)
    np.testing.assert_array_equal(tumor_region(small), expected)


@pytest.mark.parametrize("radius", [1, 2, 3])
def test_cube_filter_equals_scipy_with_border_value_0(radius) -> None:
    """Dilation and erosion by a cube as 1-D passes: scipy's with a cubic structure, at the array edges too
    (voxels outside the array count as false)."""
    from UniversalSegLib.inference.morphology import cube_filter

    rng = np.random.default_rng(radius)
    mask = ndimage.binary_closing(rng.random((14, 11, 9)) > 0.3)
    mask[0], mask[:, -1] = True, True  # full planes on two edges
    cube = np.ones((2 * radius + 1,) * 3, dtype=bool)
    for dilate, scipy_filter in ((True, ndimage.binary_dilation), (False, ndimage.binary_erosion)):
        expected = scipy_filter(mask, structure=cube, border_value=0)
        np.testing.assert_array_equal(cube_filter(mask, radius, dilate), expected)


def test_required_classes() -> None:
    assert required_classes([27]) == {6}
    assert required_classes([26, 2]) == {3}
    assert required_classes([10]) == {11}
    assert required_classes([16]) == {17} and required_classes([17]) == {16}
    assert required_classes([1, 15]) == set()
