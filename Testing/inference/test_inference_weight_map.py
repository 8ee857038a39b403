"""The official (MONAI-0.9.0) Gaussian window weight map."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import erf

from UniversalSegLib.inference.weight_map import official_gaussian_map, window_weight_map


def _spec_map(roi: int) -> np.ndarray:
    """MODEL_SPEC §3 written out in float64: erf kernel at i − roi//2, product, max 1, clamp."""
    sigma = roi * 0.125
    t = 0.70710678 / sigma
    x = np.arange(roi) - roi // 2
    k = np.clip(0.5 * (erf((x + 0.5) * t) - erf((x - 0.5) * t)), 0, None)
    grid = k[:, None, None] * k[None, :, None] * k[None, None, :]
    grid /= grid.max()
    return np.maximum(grid, max(grid[grid > 0].min(), 1e-3))


def test_official_map_96_matches_spec_definition() -> None:
    weights = official_gaussian_map(96)
    assert weights.shape == (96, 96, 96) and weights.dtype == torch.float32
    assert weights[48, 48, 48].item() == 1.0
    assert weights.max().item() == 1.0
    assert weights.min().item() == pytest.approx(1e-3, rel=1e-6)
    clamped = (weights <= 1e-3 * (1 + 1e-6)).float().mean().item()
    assert 0.57 < clamped < 0.59
    np.testing.assert_allclose(
        weights.numpy(), _spec_map(96), rtol=5e-4, atol=1e-6
    )  # float32 erf, as MONAI 0.9.0 computed it
    # Centred at index 48, not 47.5: symmetric about 48.
    assert torch.equal(weights[47, 48, 48], weights[49, 48, 48])
    assert weights[47, 48, 48] > weights[0, 48, 48]


@pytest.mark.parametrize("roi", [16, 32, 33])
def test_official_map_other_roi_sizes(roi: int) -> None:
    weights = official_gaussian_map(roi)
    np.testing.assert_allclose(
        weights.numpy(), _spec_map(roi), rtol=5e-4, atol=1e-6
    )  # float32 erf, as MONAI 0.9.0 computed it
    assert weights[roi // 2, roi // 2, roi // 2].item() == 1.0


def test_blend_modes() -> None:
    assert torch.equal(window_weight_map("constant", 8), torch.ones(8, 8, 8))
    monai_map = window_weight_map("gaussian_monai", 16)
    assert monai_map.shape == (16, 16, 16)
    assert not torch.allclose(monai_map, window_weight_map("gaussian", 16))
    with pytest.raises(ValueError, match="blend"):
        window_weight_map("median", 8)
