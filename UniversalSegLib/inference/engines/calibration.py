"""Calibration windows for int8 quantization, cut from a synthetic abdomen CT that is generated in code.

Post-training quantization needs a few typical inputs to choose the activation ranges. We cannot ship
patient CTs, and calibrating on each user's first CT would make the quantized model depend on it, so the
windows come from a deterministic phantom: an elliptic trunk (skin, fat, muscle), lungs, liver, spleen,
kidneys with contrast, aorta, vena cava, spine and bowel gas, in Hounsfield units with mild noise. On the
fitted stand-in model, a quantization calibrated on this phantom flipped as many voxels as one calibrated
on a real CT (0.078% of a window's voxels against 0.078-0.083% for three real CTs; docs/speed.md).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813

PHANTOM_SHAPE = (120, 200, 240)  # z, y, x voxels
PHANTOM_SPACING_MM = 1.5
SEED = 0


def _ellipsoid(
    grid: tuple[np.ndarray, ...], centre: tuple[float, ...], radii: tuple[float, ...]
) -> np.ndarray:
    return sum(((axis - c) / r) ** 2 for axis, c, r in zip(grid, centre, radii, strict=True)) < 1


def synthetic_abdomen_ct() -> sitk.Image:
    """A 36 × 30 × 18 cm upper-abdomen CT (int16 HU, 1.5 mm, LPS identity), the same on every call."""
    z, y, x = np.mgrid[0 : PHANTOM_SHAPE[0], 0 : PHANTOM_SHAPE[1], 0 : PHANTOM_SHAPE[2]].astype(np.float32)
    hu = np.full(PHANTOM_SHAPE, -1000.0, dtype=np.float32)
    plane = (y, x)
    hu[_ellipsoid(plane, (100, 120), (80, 110))] = -100.0  # subcutaneous fat
    trunk = _ellipsoid(plane, (100, 120), (70, 100))
    hu[trunk] = 40.0  # muscle and soft tissue
    lungs = (z > 80) & (_ellipsoid(plane, (95, 70), (45, 35)) | _ellipsoid(plane, (95, 170), (45, 35)))
    hu[lungs] = -850.0
    organs = (
        ((60, 90, 80), (30, 40, 50), 60.0),  # liver (patient's right = image left)
        ((65, 120, 175), (15, 22, 18), 50.0),  # spleen
        ((40, 135, 85), (22, 18, 14), 150.0),  # kidneys (contrast-enhanced cortex)
        ((40, 135, 155), (22, 18, 14), 150.0),
        ((50, 80, 140), (8, 10, 15), -900.0),  # bowel gas
    )
    grid = (z, y, x)
    for centre, radii, value in organs:
        hu[_ellipsoid(grid, centre, radii)] = value
    vessel = (y - 125) ** 2 + (x - 125) ** 2 < 64  # aorta
    hu[vessel & trunk] = 200.0
    hu[((y - 122) ** 2 + (x - 105) ** 2 < 49) & trunk] = 120.0  # inferior vena cava
    spine = (y - 150) ** 2 + (x - 120) ** 2
    hu[spine < 150] = 700.0  # cortical bone
    hu[spine < 60] = 250.0  # vertebral body
    noise = np.random.default_rng(SEED).normal(0.0, 15.0, PHANTOM_SHAPE).astype(np.float32)
    hu += noise * (hu > -900)
    image = sitk.GetImageFromArray(np.rint(hu).astype(np.int16))
    image.SetSpacing((PHANTOM_SPACING_MM,) * 3)
    return image


def calibration_windows(roi: int = 96, limit: int = 8) -> list[np.ndarray]:
    """Up to ``limit`` float32 windows ``[1, 1, roi, roi, roi]`` of the phantom, preprocessed the official way
    (1.5 mm RAS, intensity window, cropped to the body), at half-window steps, zero-padded at the edges."""
    from ..preprocessing import preprocess

    volume = preprocess(synthetic_abdomen_ct()).tensor[0].numpy()
    padded_shape = [max(roi, n) for n in volume.shape]
    padded = np.zeros(padded_shape, dtype=np.float32)
    padded[tuple(slice(0, n) for n in volume.shape)] = volume
    starts = [range(0, n - roi + 1, roi // 2) for n in padded_shape]
    windows = [
        np.ascontiguousarray(padded[a : a + roi, b : b + roi, c : c + roi])[None, None]
        for a in starts[0]
        for b in starts[1]
        for c in starts[2]
    ]
    step = max(1, len(windows) // limit)
    return windows[::step][:limit]
