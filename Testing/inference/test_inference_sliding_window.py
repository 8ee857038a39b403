"""Sliding window: equal to a brute-force reference, window counting, channels, progress, cancellation."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from UniversalSegLib.inference import SegmentationCancelled
from UniversalSegLib.inference.sliding_window import count_windows, sliding_window_logits
from UniversalSegLib.inference.weight_map import window_weight_map


def window_dependent_predictor(x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
    """Logits that depend on the whole window (its mean), so blending matters; channel c scales by c+1."""
    channels = list(channels or [0])
    mean = x.mean(dim=(2, 3, 4), keepdim=True)
    return torch.cat([(c + 1) * x - mean * x.square() for c in channels], dim=1)


def _starts(n: int, roi: int, overlap: float) -> list[int]:
    """Window starts along one axis as MODEL_SPEC §3 describes them."""
    interval = roi if n == roi else max(int(roi * (1 - overlap)), 1)
    starts, start = [], 0
    while True:
        if start + roi >= n:
            starts.append(n - roi)
            break
        starts.append(start)
        start += interval
    return starts


def brute_force(image: np.ndarray, roi: int, overlap: float, weights: np.ndarray, channels) -> np.ndarray:
    """Reference blending in float64: symmetric zero padding, C-order windows, weighted mean, crop."""
    pads = [(max(roi - n, 0) // 2, max(roi - n, 0) - max(roi - n, 0) // 2) for n in image.shape]
    padded = np.pad(image, pads)
    out = np.zeros((len(channels), *padded.shape))
    count = np.zeros(padded.shape)
    for a in _starts(padded.shape[0], roi, overlap):
        for b in _starts(padded.shape[1], roi, overlap):
            for c in _starts(padded.shape[2], roi, overlap):
                box = (slice(a, a + roi), slice(b, b + roi), slice(c, c + roi))
                window = torch.from_numpy(padded[box][None, None].astype(np.float32))
                logits = window_dependent_predictor(window, channels)[0].double().numpy()
                out[(slice(None), *box)] += logits * weights
                count[box] += weights
    out /= count
    crop = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, image.shape, strict=True))
    return out[(slice(None), *crop)]


@pytest.mark.parametrize("shape", [(40, 30, 20), (40, 30, 10)])
@pytest.mark.parametrize("blend", ["gaussian", "constant", "gaussian_monai"])
def test_matches_brute_force_reference(shape: tuple[int, int, int], blend: str) -> None:
    rng = np.random.default_rng(0)
    image = rng.random(shape).astype(np.float32)
    roi, channels = 16, [4, 1]
    weights = window_weight_map(blend, roi).double().numpy()
    expected = brute_force(image, roi, 0.5, weights, channels)
    result = sliding_window_logits(
        torch.from_numpy(image)[None, None], window_dependent_predictor, channels, roi_size=roi, blend=blend
    )
    assert result.shape == (1, 2, *shape) and result.dtype == torch.float32
    np.testing.assert_allclose(result[0].numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sw_batch_size", [1, 3])
def test_window_count_progress_and_batching(sw_batch_size: int) -> None:
    image = torch.rand(1, 1, 40, 30, 10)
    expected = len(_starts(40, 16, 0.5)) * len(_starts(30, 16, 0.5)) * len(_starts(16, 16, 0.5))
    assert count_windows((40, 30, 10), (16, 16, 16), 0.5) == expected == 4 * 3 * 1
    seen: list[tuple[int, int]] = []
    windows: list[int] = []

    def predictor(x: torch.Tensor, channels=None) -> torch.Tensor:
        windows.append(x.shape[0])
        return window_dependent_predictor(x, channels)

    batched = sliding_window_logits(
        image,
        predictor,
        [0],
        roi_size=16,
        sw_batch_size=sw_batch_size,
        on_window=lambda d, t: seen.append((d, t)),
    )
    single = sliding_window_logits(image, window_dependent_predictor, [0], roi_size=16)
    assert sum(windows) == expected
    assert seen[0] == (0, expected) and seen[-1] == (expected, expected)
    assert all(total == expected for _, total in seen)
    torch.testing.assert_close(batched, single)


def test_cancellation_between_windows() -> None:
    cancel = threading.Event()
    calls = []

    def predictor(x: torch.Tensor, channels=None) -> torch.Tensor:
        calls.append(1)
        if len(calls) == 2:
            cancel.set()
        return window_dependent_predictor(x, channels)

    with pytest.raises(SegmentationCancelled, match="2 of 12"):
        sliding_window_logits(torch.rand(1, 1, 40, 30, 10), predictor, [0], roi_size=16, cancel=cancel)
    assert len(calls) == 2


def test_predictor_ignoring_channels_is_reported() -> None:
    def bad(x: torch.Tensor, channels=None) -> torch.Tensor:
        return x.repeat(1, 32, 1, 1, 1)

    with pytest.raises(ValueError, match="channels"):
        sliding_window_logits(torch.rand(1, 1, 16, 16, 16), bad, [0, 3], roi_size=16)
