"""Per-class statistics of a segmentation: volume, HU, and lesion count/size for tumors and cysts."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError
from scipy.spatial.distance import pdist

from UniversalSegLib.io.atomic import atomic_write_text, file_extension
from UniversalSegLib.io.class_lookup import class_label
from UniversalSegLib.io.grid import bounding_box, ijk_to_lps, mask_array, reference_grid, same_grid

#: Above this many hull vertices the pairwise distances are computed in blocks to bound memory.
_PAIRWISE_BLOCK = 2048


@dataclass
class LesionStatistics:
    """One connected lesion (26-connectivity).

    Attributes:
        voxel_count: voxels in the lesion.
        volume_ml: voxel_count x voxel volume, in millilitres.
        max_diameter_mm: largest distance between two voxel centres of the lesion, in mm
            (0 for a single voxel; about one voxel shorter than an edge-to-edge measurement).
        centroid_lps: mean voxel position in LPS millimetres.
    """

    voxel_count: int
    volume_ml: float
    max_diameter_mm: float
    centroid_lps: tuple[float, float, float]


@dataclass
class ClassStatistics:
    """Statistics of one class mask; the HU values are None for an empty mask.

    ``lesions`` is None for classes that are not tumors/cysts, else largest first.
    """

    index: int
    key: str
    name: str
    voxel_count: int
    volume_ml: float
    mean_hu: float | None
    std_hu: float | None
    lesions: list[LesionStatistics] | None = field(default=None)

    @property
    def lesion_count(self) -> int | None:
        return None if self.lesions is None else len(self.lesions)


def compute_statistics(masks: Mapping[int, sitk.Image], ct: sitk.Image) -> list[ClassStatistics]:
    """Compute :class:`ClassStatistics` for each class, in index order.

    Args:
        masks: class index -> binary mask (non-zero = inside), on the CT's grid.
        ct: the CT in HU on the same grid (e.g. the image that was segmented).

    Raises:
        ValueError: masks and CT are on different grids.
    """
    if not masks:
        return []
    reference = reference_grid(masks)
    if not same_grid(reference, ct):
        raise ValueError("The CT and the masks lie on different voxel grids; pass the CT that was segmented.")
    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
    hu = sitk.GetArrayViewFromImage(ct)
    results = []
    for index in sorted(masks):
        label = class_label(index)
        inside = mask_array(masks[index])
        box = bounding_box(inside) or (slice(0, 0),) * 3
        inside = inside[box]  # crop once: the rest only looks at the mask's bounding box
        values = hu[box][inside].astype(np.float64)
        count = int(values.size)
        offset = tuple(axis.start for axis in box)
        results.append(
            ClassStatistics(
                index=int(index),
                key=label.key,
                name=label.name,
                voxel_count=count,
                volume_ml=count * voxel_ml,
                mean_hu=float(values.mean()) if count else None,
                std_hu=float(values.std()) if count else None,
                lesions=lesion_statistics(inside, ct, offset) if label.is_lesion else None,
            )
        )
    return results


def lesion_statistics(
    inside: np.ndarray, grid: sitk.Image, offset: tuple[int, int, int] = (0, 0, 0)
) -> list[LesionStatistics]:
    """Split a (z, y, x) boolean mask into 26-connected lesions, largest first.

    ``inside`` may be a crop of ``grid`` starting at voxel ``offset`` (z, y, x).
    """
    if not inside.any():
        return []
    components = cc3d.connected_components(inside.astype(np.uint8), connectivity=26)
    summary = cc3d.statistics(components)
    voxel_ml = float(np.prod(grid.GetSpacing())) / 1000.0
    zyx_to_lps = ijk_to_lps(grid)[:3] @ _ZYX_TO_IJK1
    lesions = []
    for label in range(1, len(summary["voxel_counts"])):
        count = int(summary["voxel_counts"][label])
        if count == 0:
            continue
        box = summary["bounding_boxes"][label]
        start = np.array([s.start for s in box]) + offset
        lesion = components[box] == label
        centroid = zyx_to_lps @ np.append(summary["centroids"][label] + offset, 1.0)
        boundary = np.argwhere(lesion & ~ndimage.binary_erosion(lesion, border_value=0)) + start
        points = (zyx_to_lps @ np.c_[boundary, np.ones(len(boundary))].T).T
        diameter = max_distance(points)
        lesions.append(LesionStatistics(count, count * voxel_ml, diameter, tuple(centroid.tolist())))
    return sorted(lesions, key=lambda lesion: lesion.voxel_count, reverse=True)


# (z, y, x, 1) index -> (i, j, k, 1) index
_ZYX_TO_IJK1 = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)


def max_distance(points: np.ndarray) -> float:
    """Largest pairwise distance among (N, 3) points, via their convex hull vertices."""
    if len(points) < 2:
        return 0.0
    if len(points) > 4:
        # "QJ" joggles flat/degenerate sets (e.g. single-slice lesions); extreme points stay vertices.
        with contextlib.suppress(QhullError):
            points = points[ConvexHull(points, qhull_options="QJ").vertices]
    if len(points) <= _PAIRWISE_BLOCK:
        return float(pdist(points).max())
    best = 0.0
    for start in range(0, len(points), _PAIRWISE_BLOCK):
        block = points[start : start + _PAIRWISE_BLOCK]
        differences = block[:, None, :] - points[None, :, :]
        best = max(best, float(np.sqrt((differences**2).sum(-1).max())))
    return best


def statistics_rows(stats: list[ClassStatistics]) -> list[dict[str, object]]:
    """One flat row per class (lesion volumes/diameters joined by ';'), for CSV or tables."""
    rows = []
    for item in stats:
        lesions = item.lesions or []
        rows.append(
            {
                "index": item.index,
                "key": item.key,
                "name": item.name,
                "voxel_count": item.voxel_count,
                "volume_ml": round(item.volume_ml, 4),
                "mean_hu": None if item.mean_hu is None else round(item.mean_hu, 2),
                "std_hu": None if item.std_hu is None else round(item.std_hu, 2),
                "lesion_count": item.lesion_count,
                "lesion_volumes_ml": ";".join(f"{lesion.volume_ml:.4f}" for lesion in lesions),
                "lesion_max_diameters_mm": ";".join(f"{lesion.max_diameter_mm:.2f}" for lesion in lesions),
            }
        )
    return rows


def write_statistics(stats: list[ClassStatistics], path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write statistics atomically to ``.json`` (lesions nested) or ``.csv`` (one row per class).

    Raises:
        ValueError: the extension is neither .json nor .csv.
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
    """
    extension = file_extension(path)
    if extension == ".json":
        text = json.dumps([asdict(item) for item in stats], indent=2) + "\n"
    elif extension == ".csv":
        rows = statistics_rows(stats)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else ["index"])
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        raise ValueError(f"Cannot write statistics to {Path(path).name}: use a .json or .csv file name.")
    return atomic_write_text(path, text, overwrite)


def format_statistics_table(stats: list[ClassStatistics]) -> str:
    """A fixed-width text table for the terminal."""
    header = ("Class", "Volume (mL)", "Voxels", "Mean HU", "Std HU", "Lesions (max diameter mm)")
    lines = [header]
    for item in stats:
        lesions = ""
        if item.lesions is not None:
            diameters = ", ".join(f"{lesion.max_diameter_mm:.1f}" for lesion in item.lesions[:5])
            more = ", ..." if len(item.lesions) > 5 else ""
            lesions = f"{len(item.lesions)}" + (f" ({diameters}{more})" if item.lesions else "")
        lines.append(
            (
                item.name,
                f"{item.volume_ml:.2f}",
                str(item.voxel_count),
                "-" if item.mean_hu is None else f"{item.mean_hu:.1f}",
                "-" if item.std_hu is None else f"{item.std_hu:.1f}",
                lesions,
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [_join_cells(line, widths) for line in lines]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def _join_cells(cells: tuple[str, ...], widths: list[int]) -> str:
    return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
