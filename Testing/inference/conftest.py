"""Fixtures of the inference tests: the real CTs and analytic stand-in predictors."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import SimpleITK as sitk  # noqa: N813
import torch


class ThresholdPredictor:
    """Analytic predictor: every requested channel gets ``scale · (intensity − threshold)``.

    Records the channels it was asked for and the number of windows it saw.
    """

    def __init__(self, threshold: float = 0.5, scale: float = 10.0) -> None:
        self.threshold, self.scale = threshold, scale
        self.calls: list[list[int]] = []
        self.windows = 0

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        channels = list(channels or [0])
        self.calls.append(channels)
        self.windows += x.shape[0]
        return (self.scale * (x - self.threshold)).repeat(1, len(channels), 1, 1, 1)


@pytest.fixture
def threshold_predictor() -> ThresholdPredictor:
    return ThresholdPredictor()


@pytest.fixture(scope="session")
def example_ct_path(ct_dir: Path) -> Path:
    return ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"


@pytest.fixture
def example_ct(example_ct_path: Path) -> sitk.Image:
    """The 122×101×30, 3 mm abdomen CT (stored RAS)."""
    return sitk.ReadImage(str(example_ct_path))


@pytest.fixture
def example_seg(ct_dir: Path) -> sitk.Image:
    """TotalSegmentator labels of :func:`example_ct` (1 spleen, 2/3 kidneys, 5 liver, ...)."""
    return sitk.ReadImage(str(ct_dir / "totalseg_example" / "example_seg.nii.gz"))
