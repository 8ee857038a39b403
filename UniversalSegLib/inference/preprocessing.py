"""The official preprocessing chain on a SimpleITK image (MODEL_SPEC §3), with a model's own settings.

Orientation RAS → Spacing 1.5 mm (bilinear, border padding) → ScaleIntensityRange(−175, 250, 0, 1, clip)
→ CropForeground (> 0, margin 0), with MONAI array transforms on a MetaTensor carrying the RAS affine.
Orientation, spacing (per axis), intensity window come from :class:`PreprocessingSettings`
(:data:`OFFICIAL` by default: the values above).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch
from monai.data import MetaTensor
from monai.transforms import CropForeground, Orientation, ScaleIntensityRange, Spacing, SpatialCrop

from .errors import InferenceError
from .geometry import array_xyz_from_sitk, check_ct_image, ras_affine_from_sitk
from .preprocessing_settings import OFFICIAL, PreprocessingSettings

TARGET_SPACING_MM = OFFICIAL.spacing_mm[0]
#: nibabel's axis-code convention (index increases toward R, A, S for "RAS").
RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))
HU_MIN, HU_MAX = OFFICIAL.intensity_min, OFFICIAL.intensity_max


@dataclass
class PreprocessedImage:
    """A CT in the model's space, and what is needed to map predictions back.

    Attributes:
        tensor: ``[1, X, Y, Z]`` float32 intensities in [0, 1] on the cropped model grid (1.5 mm RAS for
            the official settings).
        affine: 4x4 RAS affine of the cropped grid (index in (x, y, z) order → RAS mm).
        crop_start: first voxel of the crop box in the uncropped model grid.
        crop_end: one past the last voxel of the crop box.
        resampled_shape: shape of the uncropped model grid.
        settings: the preprocessing that made it.
    """

    tensor: torch.Tensor
    affine: np.ndarray
    crop_start: tuple[int, int, int]
    crop_end: tuple[int, int, int]
    resampled_shape: tuple[int, int, int]
    settings: PreprocessingSettings = OFFICIAL

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape of the cropped grid."""
        return tuple(int(s) for s in self.tensor.shape[1:])


def to_meta_tensor(image: sitk.Image) -> MetaTensor:
    """``image`` as a channel-first MetaTensor ``[1, X, Y, Z]`` with its RAS affine (as nibabel loads it)."""
    check_ct_image(image)
    array = array_xyz_from_sitk(image, np.float32)
    affine = torch.as_tensor(ras_affine_from_sitk(image), dtype=torch.float64)
    return MetaTensor(torch.from_numpy(array)[None], affine=affine)


def resample_to_model_grid(
    data: MetaTensor, mode: str = "bilinear", settings: PreprocessingSettings = OFFICIAL
) -> MetaTensor:
    """Orientation (RAS) then spacing (1.5 mm) of ``settings``; ``mode="nearest"`` for label maps."""
    oriented = Orientation(axcodes=settings.orientation, labels=RAS_LABELS)(data)
    spacing = Spacing(pixdim=settings.spacing_mm, mode=mode, padding_mode="border", align_corners=False)
    return spacing(oriented)


def preprocess(
    image: sitk.Image, settings: PreprocessingSettings = OFFICIAL, device: torch.device | str | None = None
) -> PreprocessedImage:
    """Run the official chain on a CT image (HU), with the orientation, spacing and intensity window of
    ``settings`` (the window size is the sliding window's business).

    Args:
        image: the CT in HU.
        settings: orientation, spacing and intensity window.
        device: where the transforms run and the result stays (``None``: the CPU). On a CUDA GPU the
            resampling takes milliseconds instead of seconds; its results equal the CPU's up to float
            rounding of the interpolation.

    Raises:
        InferenceError: for a non-3D or multi-component image, or when no voxel is above the window's
            lower end (−175 HU).
    """
    data = to_meta_tensor(image)
    if device is not None:
        data = data.to(device)
    resampled = resample_to_model_grid(data, settings=settings)
    scaled = ScaleIntensityRange(
        a_min=settings.intensity_min, a_max=settings.intensity_max, b_min=0.0, b_max=1.0, clip=True
    )(resampled)
    cropper = CropForeground(select_fn=lambda x: x > 0, margin=0, allow_smaller=True)
    start, end = cropper.compute_bounding_box(scaled)
    start, end = tuple(int(s) for s in start), tuple(int(e) for e in end)
    if any(e <= s for s, e in zip(start, end, strict=True)):
        raise InferenceError(
            f"no voxel is above {settings.intensity_min:g} HU: the image does not look like a CT in "
            "Hounsfield units"
        )
    cropped = SpatialCrop(roi_start=start, roi_end=end)(scaled)
    return PreprocessedImage(
        tensor=cropped.as_tensor().to(torch.float32).contiguous(),
        affine=np.asarray(cropped.affine.detach().cpu(), dtype=np.float64),
        crop_start=start,
        crop_end=end,
        resampled_shape=tuple(int(s) for s in scaled.shape[1:]),
        settings=settings,
    )


def preprocess_labels(labels: sitk.Image, reference: PreprocessedImage) -> np.ndarray:
    """A label map on the same grid as ``reference`` (nearest resampling, same crop), (x, y, z) order.

    ``labels`` must share the CT's grid, as the reference segmentation of that CT does.
    """
    check_ct_image(labels)
    resampled = resample_to_model_grid(to_meta_tensor(labels), mode="nearest", settings=reference.settings)
    if tuple(resampled.shape[1:]) != reference.resampled_shape:
        raise InferenceError(
            f"label map resamples to {tuple(resampled.shape[1:])}, the CT to {reference.resampled_shape}: "
            "the label map must be on the CT's grid"
        )
    cropped = SpatialCrop(roi_start=reference.crop_start, roi_end=reference.crop_end)(resampled)
    return np.rint(cropped.as_tensor().numpy()[0]).astype(np.int32)
