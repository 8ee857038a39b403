"""Window weight maps for blending sliding-window logits.

The official pipeline ran MONAI 0.9.0, whose Gaussian map differs from current MONAI's: a
discretised (erf) Gaussian centred at index ``roi // 2``, normalised to a maximum of 1 and clamped from
below at ``max(min non-zero, 1e-3)`` (MODEL_SPEC §3). With that map, MONAI 1.x's sliding window
reproduces the official output bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.data.utils import compute_importance_map

SIGMA_SCALE = 0.125
TRUNCATED = 4.0
MIN_WEIGHT = 1e-3


def erf_gaussian_kernel_1d(sigma: float) -> torch.Tensor:
    """Discretised Gaussian ``½[erf((x+½)t) − erf((x−½)t)]``, ``t = 0.70710678/σ``, for x in [−tail, tail]."""
    tail = int(max(float(sigma) * TRUNCATED, 0.5) + 0.5)
    x = torch.arange(-tail, tail + 1, dtype=torch.float32)
    t = 0.70710678 / abs(float(sigma))
    return (0.5 * (torch.erf(t * (x + 0.5)) - torch.erf(t * (x - 0.5)))).clamp(min=0)


def _axis_weights(size: int, sigma_scale: float) -> torch.Tensor:
    """The 1-D weights of one axis: kernel value at ``i − size // 2``, 0 beyond the kernel's tail."""
    kernel = erf_gaussian_kernel_1d(size * sigma_scale)
    tail = (kernel.numel() - 1) // 2
    offsets = torch.arange(size) - size // 2 + tail
    inside = (offsets >= 0) & (offsets < kernel.numel())
    weights = torch.zeros(size, dtype=torch.float32)
    weights[inside] = kernel[offsets[inside]]
    return weights


def official_gaussian_map(roi_size: Sequence[int] | int, sigma_scale: float = SIGMA_SCALE) -> torch.Tensor:
    """The MONAI-0.9.0 Gaussian importance map for a window of ``roi_size`` (3 ints or one).

    Returns:
        float32 tensor of shape ``roi_size``, maximum 1, minimum ``max(min non-zero, 1e-3)``.
    """
    sizes = [int(roi_size)] * 3 if isinstance(roi_size, int) else [int(s) for s in roi_size]
    weights = [_axis_weights(size, sigma_scale) for size in sizes]
    # A delta convolved axis by axis: products in the same order as the separable filter.
    grid = weights[0][:, None, None] * weights[1][None, :, None]
    grid = grid * weights[2][None, None, :]
    grid = grid / grid.max()
    floor = max(float(grid[grid > 0].min()), MIN_WEIGHT)
    return grid.clamp(min=floor)


def window_weight_map(blend: str, roi_size: Sequence[int] | int) -> torch.Tensor:
    """The weight map for ``blend`` (``"gaussian"``, ``"gaussian_monai"`` or ``"constant"``)."""
    sizes = [int(roi_size)] * 3 if isinstance(roi_size, int) else [int(s) for s in roi_size]
    if blend == "gaussian":
        return official_gaussian_map(sizes)
    if blend == "gaussian_monai":
        return compute_importance_map(sizes, mode="gaussian", sigma_scale=SIGMA_SCALE).float()
    if blend == "constant":
        return torch.ones(sizes, dtype=torch.float32)
    raise ValueError(f"unknown blend mode {blend!r}; use 'gaussian', 'gaussian_monai' or 'constant'")
