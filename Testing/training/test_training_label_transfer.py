"""Label transfer: value mapping, left/right split, 255 for unannotated classes, cached prepare."""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_config  # noqa: E402

from training.label_transfer import NOT_ANNOTATED, combination_map, expand_target, split_left_right  # noqa: E402
from training.prepare import case_jobs, prepare  # noqa: E402


def _two_blobs() -> np.ndarray:
    label = np.zeros((20, 8, 8), dtype=np.int16)
    label[2:6, 2:6, 2:6] = 1  # low x: patient left in RAS
    label[11:17, 2:6, 2:6] = 1  # high x, larger: patient right
    label[18, 1, 1] = 1  # a stray voxel nearer the right organ
    return label


def test_split_left_right_uses_smaller_x_for_left():
    right, left = split_left_right(_two_blobs() == 1)
    assert left[2:6, 2:6, 2:6].all()
    assert not left[11:].any()
    assert right[11:17, 2:6, 2:6].all() and right[18, 1, 1]
    assert not (right & left).any()
    assert (right | left).sum() == (_two_blobs() == 1).sum()


def test_split_single_component_goes_by_side_of_volume():
    mask = np.zeros((20, 4, 4), bool)
    mask[1:4] = True
    right, left = split_left_right(mask)
    assert left.sum() == mask.sum() and not right.any()


def test_combination_map_multilabel_split_and_not_annotated():
    label = _two_blobs()
    label[3, 3, 3] = 2  # a tumour voxel inside the left kidney
    combo, combos = combination_map(label, {1: [2], 2: [2, 26]}, [(2, 3)])
    target = expand_target(combo, combos, annotated=[2, 3, 26], num_classes=32)
    assert target.shape == (32, 20, 8, 8) and target.dtype == np.uint8
    assert target[1, 11:17, 2:6, 2:6].all() and not target[1, :8].any()  # right kidney
    assert target[2, 2:6, 2:6, 2:6].all() and target[2, 3, 3, 3] == 1  # left kidney includes its tumour
    assert target[25].sum() == 1 and target[25, 3, 3, 3] == 1  # kidney tumour channel
    assert (target[5] == NOT_ANNOTATED).all() and (target[0] == NOT_ANNOTATED).all()
    assert set(np.unique(target[[1, 2, 25]])) <= {0, 1}


def test_prepare_real_ct_splits_kidneys_like_the_reference(ct_dir, tmp_path):
    config = make_config(ct_dir, tmp_path)
    jobs = prepare(config, workers=2, show_progress=False)  # process pool
    assert len(jobs) == 4
    kidneys = case_jobs(config, config.dataset("B"))[0]
    with np.load(kidneys.output + ".npz") as data:
        target, image = data["target"], data["image"]
    reference = np.asarray(nib.load(kidneys.label).dataobj)
    assert image.shape == reference.shape  # 3 mm data prepared at 3 mm
    # Both kidneys were one label value; the split must recover TotalSegmentator's right (2) / left (3).
    np.testing.assert_array_equal(target[1] == 1, reference == 2)
    np.testing.assert_array_equal(target[2] == 1, reference == 3)
    assert (target[5] == NOT_ANNOTATED).all()  # liver is not annotated in dataset B
    organs = case_jobs(config, config.dataset("A"))[0]
    with np.load(organs.output + ".npz") as data:
        np.testing.assert_array_equal(data["target"][5] == 1, reference == 5)
        assert (data["target"][1] == NOT_ANNOTATED).all()
    stamp = Path(kidneys.output + ".npz").stat().st_mtime_ns
    prepare(config, workers=1, show_progress=False)  # resumable: done cases are skipped
    assert Path(kidneys.output + ".npz").stat().st_mtime_ns == stamp
