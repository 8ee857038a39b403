"""A synthetic abdomen-like CT whose preprocessed extent gives a chosen number of sliding windows.

The body is an elliptic cylinder of soft tissue (40 HU) under a layer of fat (-100 HU) in air (-1000 HU),
spanning every slice as in a real abdomen CT, with a spine (700 HU, spinal canal 10 HU), an aorta
(180 HU), liver (60 HU) with a tumour (25 HU), spleen (50 HU), kidneys (150 HU) and a gas bubble in the
stomach (-900 HU), plus Gaussian noise (12 HU). Organs are placed in body-relative coordinates, so any
body size keeps the same anatomy.

The body's extent is chosen so that the official preprocessing (1.5 mm RAS, crop to voxels above
-175 HU) gives a cropped grid in the middle of the range that yields the wanted window count per axis for
the given window size and overlap: the count does not depend on a voxel more or less at the edges.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Relative body extents (left-right, anterior-posterior, superior-inferior) of an abdomen CT.
ABDOMEN_ASPECT = (1.15, 0.8, 1.05)
#: Window grids (x, y, z) of the counts the GPU benchmark uses: 48 = a typical abdomen, 80 = a large one.
KNOWN_GRIDS = {48: (4, 3, 4), 80: (5, 4, 4)}
MODEL_SPACING_MM = 1.5
MARGIN_MM = 20.0
NOISE_HU = 12.0

AIR, FAT, SOFT_TISSUE = -1000.0, -100.0, 40.0
#: (HU, centre (u, v, w), semi-axes (u, v, w)) in body-relative units: u = x / half width (+ toward the
#: patient's left, LPS), v = y / half depth (+ posterior), w = z / half length (+ superior).
ORGANS: tuple[tuple[float, tuple[float, float, float], tuple[float, float, float]], ...] = (
    (60.0, (-0.42, -0.1, 0.45), (0.38, 0.45, 0.4)),  # liver (patient's right, upper abdomen)
    (25.0, (-0.5, -0.05, 0.5), (0.09, 0.11, 0.1)),  # liver tumour
    (50.0, (0.55, 0.3, 0.45), (0.14, 0.2, 0.2)),  # spleen
    (150.0, (-0.38, 0.45, 0.0), (0.12, 0.16, 0.22)),  # right kidney
    (150.0, (0.38, 0.45, 0.02), (0.12, 0.16, 0.22)),  # left kidney
    (-900.0, (0.3, -0.35, 0.55), (0.12, 0.1, 0.1)),  # gas in the stomach
)
#: (HU, centre (u, v), semi-axes (u, v)) of structures that run through every slice.
CYLINDERS: tuple[tuple[float, tuple[float, float], tuple[float, float]], ...] = (
    (700.0, (0.0, 0.62), (0.13, 0.14)),  # vertebral bodies and arches
    (10.0, (0.0, 0.66), (0.04, 0.05)),  # spinal canal
    (180.0, (0.06, 0.32), (0.06, 0.07)),  # aorta
)


@dataclass(frozen=True)
class SyntheticCT:
    """What :func:`write_synthetic_ct` wrote.

    Attributes:
        path: the CT file.
        grid: windows per axis (x, y, z) the preprocessed CT is built to give.
        size: voxels (x, y, z) of the written image.
        spacing_mm: its voxel spacing (x, y, z).
        body_mm: body extent (left-right, anterior-posterior, superior-inferior).
    """

    path: Path
    grid: tuple[int, int, int]
    size: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    body_mm: tuple[float, float, float]

    @property
    def windows(self) -> int:
        return math.prod(self.grid)


def window_grid(windows: int) -> tuple[int, int, int]:
    """Windows per axis (x, y, z) whose product is ``windows``, shaped like an abdomen.

    Raises:
        ValueError: ``windows`` < 1.
    """
    if windows < 1:
        raise ValueError(f"the window count must be at least 1, got {windows}")
    if windows in KNOWN_GRIDS:
        return KNOWN_GRIDS[windows]
    side = windows ** (1 / 3)
    ideal = [side * a / math.prod(ABDOMEN_ASPECT) ** (1 / 3) for a in ABDOMEN_ASPECT]
    grids = [
        (x, y, windows // (x * y))
        for x, y in itertools.product(range(1, windows + 1), repeat=2)
        if windows % (x * y) == 0
    ]
    return min(grids, key=lambda g: sum(math.log(n / i) ** 2 for n, i in zip(g, ideal, strict=True)))


def axis_voxels(count: int, roi_size: int, overlap: float) -> float:
    """A cropped length (model voxels) in the middle of the range that gives ``count`` windows on an axis."""
    if count == 1:
        return 0.75 * roi_size
    interval = max(int(roi_size * (1 - overlap)), 1)
    return roi_size + (count - 1.5) * interval


def _inside(coords: Sequence[np.ndarray], centre: Sequence[float], radii: Sequence[float]) -> np.ndarray:
    total = sum(((c - m) / r) ** 2 for c, m, r in zip(coords, centre, radii, strict=True))
    return total <= 1.0


def _slice_hu(
    u: np.ndarray, v: np.ndarray, w: float, fat_ratio: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """One axial slice in HU (y, x), ``u``/``v`` body-relative in-plane coordinates, ``w`` the slice's."""
    hu = np.full(u.shape, AIR, dtype=np.float32)
    body = _inside((u, v), (0, 0), (1, 1))
    hu[body] = FAT
    hu[_inside((u, v), (0, 0), fat_ratio)] = SOFT_TISSUE
    for value, centre, radii in CYLINDERS:
        hu[_inside((u, v), centre, radii)] = value
    for value, centre, radii in ORGANS:
        if abs(w - centre[2]) <= radii[2]:
            hu[_inside((u, v, np.float32(w)), centre, radii) & body] = value
    hu += rng.standard_normal(u.shape, dtype=np.float32) * np.float32(NOISE_HU)
    return hu


def write_synthetic_ct(
    path: str | Path,
    windows: int,
    roi_size: int = 96,
    overlap: float = 0.5,
    spacing_mm: tuple[float, float, float] = (0.8, 0.8, 2.5),
    fat_mm: float = 15.0,
    seed: int = 0,
) -> SyntheticCT:
    """Write (compressed NIfTI, int16 HU, LPS identity direction) a CT that preprocesses to ``windows``.

    Args:
        path: output file (``.nii.gz``); replaced if it exists.
        windows: the sliding-window count the preprocessed CT must give (``window_grid`` splits it).
        roi_size, overlap: the sliding window's.
        spacing_mm: the input voxel spacing (x, y, z).
        fat_mm: thickness of the subcutaneous fat (at most a tenth of the body's smaller side).
        seed: the noise's seed.
    """
    import SimpleITK as sitk  # noqa: N813

    grid = window_grid(windows)
    body_mm = tuple(axis_voxels(n, roi_size, overlap) * MODEL_SPACING_MM for n in grid)
    width, depth, length = body_mm
    field_mm = max(width, depth) + 2 * MARGIN_MM
    nx = ny = math.ceil(field_mm / spacing_mm[0])
    nz = max(1, round(length / spacing_mm[2]))
    x = (np.arange(nx, dtype=np.float32) - (nx - 1) / 2) * np.float32(spacing_mm[0])
    y = (np.arange(ny, dtype=np.float32) - (ny - 1) / 2) * np.float32(spacing_mm[1])
    u, v = np.meshgrid(x / (width / 2), y / (depth / 2))  # (y, x)
    fat_mm = min(fat_mm, 0.1 * min(width, depth))  # small test bodies keep some tissue inside the fat
    fat_ratio = (1 - 2 * fat_mm / width, 1 - 2 * fat_mm / depth)
    rng = np.random.default_rng(seed)
    volume = np.empty((nz, ny, nx), dtype=np.int16)
    for k in range(nz):
        w = ((k - (nz - 1) / 2) * spacing_mm[2]) / (length / 2)
        volume[k] = np.clip(np.rint(_slice_hu(u, v, w, fat_ratio, rng)), -1024, 3071)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(tuple(float(s) for s in spacing_mm))
    image.SetOrigin(tuple(-(n - 1) / 2 * s for n, s in zip((nx, ny, nz), spacing_mm, strict=True)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".partial-{path.name}")
    sitk.WriteImage(image, str(temporary), useCompression=True)
    temporary.replace(path)
    return SyntheticCT(path, grid, (nx, ny, nz), tuple(spacing_mm), body_mm)
