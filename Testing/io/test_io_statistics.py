"""compute_statistics on crafted masks with known answers and on the real lung lesion."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
from scipy.spatial.distance import pdist

from UniversalSegLib.catalog import get_class
from UniversalSegLib.inference.statistics import (
    compute_statistics,
    format_statistics_table,
    max_distance,
    write_statistics,
)
from UniversalSegLib.io import OutputExistsError

LIVER, LIVER_TUMOR, LUNG_TUMOR = 6, 27, 30
SPACING = (0.6, 0.8, 3.0)
DIRECTION = np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])


def on_grid(array_zyx: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(SPACING)
    image.SetOrigin((5.0, -7.0, 100.0))
    image.SetDirection(DIRECTION.ravel().tolist())
    return image


@pytest.fixture
def crafted() -> tuple[dict[int, sitk.Image], sitk.Image]:
    shape = (12, 30, 40)  # z, y, x
    ct = np.full(shape, -1000, np.int16)
    liver = np.zeros(shape, np.uint8)
    liver[2:10, 5:25, 5:35] = 1
    ct[liver == 1] = 60
    ct[2:10, 5:25, 5:20] = 40  # half the liver at 40 HU, half at 60 -> mean 50, std 10
    tumor = np.zeros(shape, np.uint8)
    tumor[3:7, 10:15, 10:22] = 1  # 4 x 5 x 12 box
    tumor[8, 20, 30] = 1  # single voxel, separate
    tumor[9, 21, 31] = 1  # touches the previous one at a corner: same 26-connected lesion
    return {LIVER: on_grid(liver), LIVER_TUMOR: on_grid(tumor)}, on_grid(ct)


def test_volumes_hu_and_lesions_on_anisotropic_grid(crafted) -> None:
    masks, ct = crafted
    liver, tumor = compute_statistics(masks, ct)
    voxel_ml = np.prod(SPACING) / 1000
    info = get_class(LIVER)
    assert (liver.index, liver.key, liver.name) == (LIVER, info.key, info.display_name)
    assert liver.voxel_count == 8 * 20 * 30
    assert liver.volume_ml == pytest.approx(8 * 20 * 30 * voxel_ml)
    assert liver.mean_hu == pytest.approx(50.0)
    assert liver.std_hu == pytest.approx(10.0)
    assert liver.lesions is None and liver.lesion_count is None
    assert tumor.voxel_count == 4 * 5 * 12 + 2
    assert tumor.lesion_count == 2
    box, pair = tumor.lesions  # largest first
    assert box.voxel_count == 240 and box.volume_ml == pytest.approx(240 * voxel_ml)
    # Box corners (centres of the extreme voxels): extents (12-1, 5-1, 4-1) voxels along x, y, z.
    expected_box = np.linalg.norm([11 * SPACING[0], 4 * SPACING[1], 3 * SPACING[2]])
    assert box.max_diameter_mm == pytest.approx(expected_box)
    assert pair.voxel_count == 2
    assert pair.max_diameter_mm == pytest.approx(np.linalg.norm(SPACING))
    # Centroid of the box: index centre (15.5, 12, 4.5) mapped through direction and spacing.
    centre_index = np.array([15.5, 12.0, 4.5])
    expected_centroid = np.array(ct.GetOrigin()) + DIRECTION @ (np.array(SPACING) * centre_index)
    np.testing.assert_allclose(box.centroid_lps, expected_centroid, atol=1e-9)


def test_sphere_diameter_and_flat_lesion(crafted) -> None:
    _, ct = crafted
    z, y, x = np.ogrid[:12, :30, :40]
    radius_mm = 8.0
    squared_mm = ((x - 20) * SPACING[0]) ** 2 + ((y - 15) * SPACING[1]) ** 2 + ((z - 6) * SPACING[2]) ** 2
    sphere = squared_mm <= radius_mm**2
    flat = np.zeros_like(sphere)
    flat[1, 2:5, 2:9] = True  # single-slice lesion: coplanar points
    masks = {LUNG_TUMOR: on_grid(sphere.astype(np.uint8)), LIVER_TUMOR: on_grid(flat.astype(np.uint8))}
    stats = {item.index: item for item in compute_statistics(masks, ct)}
    sphere_lesion = stats[LUNG_TUMOR].lesions[0]
    centres = np.argwhere(sphere)[:, ::-1] * SPACING
    assert sphere_lesion.max_diameter_mm == pytest.approx(pdist(centres).max())
    assert 2 * radius_mm - 2 * max(SPACING) < sphere_lesion.max_diameter_mm <= 2 * radius_mm
    assert stats[LIVER_TUMOR].lesions[0].max_diameter_mm == pytest.approx(np.hypot(6 * 0.6, 2 * 0.8))


def test_max_distance_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for count in (1, 2, 3, 5, 300):
        points = rng.normal(size=(count, 3)) * [10.0, 3.0, 1.0]
        expected = pdist(points).max() if count > 1 else 0.0
        assert max_distance(points) == pytest.approx(expected)
    coplanar = np.c_[rng.normal(size=(200, 2)), np.zeros(200)]
    assert max_distance(coplanar) == pytest.approx(pdist(coplanar).max())


def test_real_lung_lesion(ct_dir: Path) -> None:
    folder = ct_dir / "pyradiomics_lung1"
    label = sitk.ReadImage(str(folder / "lung1_label.nrrd"))
    ct = sitk.ReadImage(str(folder / "lung1_image.nrrd"))
    (stats,) = compute_statistics({LUNG_TUMOR: label}, ct)
    lesion_zyx = sitk.GetArrayFromImage(label) == 1
    assert stats.voxel_count == int(lesion_zyx.sum()) == 837
    assert stats.volume_ml == pytest.approx(1.36, abs=0.005)
    hu = sitk.GetArrayFromImage(ct)[lesion_zyx]
    assert stats.mean_hu == pytest.approx(hu.mean()) and stats.std_hu == pytest.approx(hu.std())
    assert stats.lesion_count == 1
    centres = np.argwhere(lesion_zyx)[:, ::-1] * np.array(ct.GetSpacing())  # identity direction
    assert stats.lesions[0].max_diameter_mm == pytest.approx(pdist(centres).max())
    assert stats.lesions[0].volume_ml == pytest.approx(stats.volume_ml)


def test_grid_mismatch_and_empty_mask(crafted) -> None:
    masks, ct = crafted
    shifted = sitk.Image(ct)
    shifted.SetOrigin((0.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="different voxel grids"):
        compute_statistics(masks, shifted)
    empty = sitk.Image(masks[LIVER]) * 0
    (stats,) = compute_statistics({LUNG_TUMOR: empty}, ct)
    assert stats.voxel_count == 0 and stats.mean_hu is None and stats.lesions == []
    assert compute_statistics({}, ct) == []


def test_write_statistics_json_csv_and_table(crafted, tmp_path: Path) -> None:
    masks, ct = crafted
    stats = compute_statistics(masks, ct)
    json_path = write_statistics(stats, tmp_path / "stats.json")
    loaded = json.loads(json_path.read_text())
    assert [item["index"] for item in loaded] == [LIVER, LIVER_TUMOR]
    assert len(loaded[1]["lesions"]) == 2 and loaded[0]["lesions"] is None
    assert loaded[1]["lesions"][0]["max_diameter_mm"] == pytest.approx(stats[1].lesions[0].max_diameter_mm)
    with (write_statistics(stats, tmp_path / "stats.csv")).open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert rows[0]["key"] == get_class(LIVER).key and rows[1]["lesion_count"] == "2"
    assert float(rows[0]["volume_ml"]) == pytest.approx(stats[0].volume_ml, abs=1e-4)
    assert len(rows[1]["lesion_max_diameters_mm"].split(";")) == 2
    with pytest.raises(OutputExistsError):
        write_statistics(stats, tmp_path / "stats.json")
    with pytest.raises(ValueError, match=".json or .csv"):
        write_statistics(stats, tmp_path / "stats.txt")
    table = format_statistics_table(stats)
    lines = table.splitlines()
    assert len(lines) == 2 + len(stats)
    assert get_class(LIVER).display_name in lines[2] and f"{stats[0].volume_ml:.2f}" in lines[2]
    assert lines[3].rstrip().endswith(f"2 ({stats[1].lesions[0].max_diameter_mm:.1f}, "
                                      f"{stats[1].lesions[1].max_diameter_mm:.1f})")  # fmt: skip
