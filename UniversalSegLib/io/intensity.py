"""Warn when a volume's intensities do not look like CT Hounsfield units."""

from __future__ import annotations

import SimpleITK as sitk  # noqa: N813 (the conventional alias)

#: Air is about -1000 HU; a CT in HU almost always has voxels below this value.
AIR_THRESHOLD_HU = -500.0


def check_ct_intensity(image: sitk.Image) -> str | None:
    """Return a warning if ``image`` does not look like a CT in Hounsfield units, else None.

    The model was trained on HU (it clips to -175..250 HU), so normalised (0..1), 8-bit (0..255)
    or un-rescaled (no negative values) volumes give poor results.
    """
    statistics = sitk.MinimumMaximumImageFilter()
    statistics.Execute(image)
    low, high = statistics.GetMinimum(), statistics.GetMaximum()
    value_range = f"{low:g}..{high:g}"
    advice = "the model expects CT intensities in Hounsfield units (air about -1000 HU)"
    if low >= 0 and high <= 1:
        return f"Intensities {value_range} look normalised to 0..1, not CT HU; {advice}."
    if low >= 0 and high <= 255:
        return f"Intensities {value_range} look like an 8-bit image, not CT HU; {advice}."
    if low >= 0:
        return (
            f"Intensities {value_range} have no negative values; the rescale slope/intercept may be missing "
            f"(stored values instead of HU); {advice}."
        )
    if low > AIR_THRESHOLD_HU:
        return (
            f"Intensities {value_range} contain no air (nothing below {AIR_THRESHOLD_HU:g}); this may not be "
            f"a CT in HU; {advice}."
        )
    return None
