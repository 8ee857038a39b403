"""The class heads as matrix products over voxel chunks equal the official grouped convolutions."""

from __future__ import annotations

import pytest
import torch

from UniversalSegLib.model.dynamic_heads import (
    NUM_DYNAMIC_PARAMS,
    apply_dynamic_heads,
    apply_dynamic_heads_by_chunks,
)


@pytest.mark.parametrize(("num_classes", "chunk"), [(1, 1000), (3, 4096), (8, 32768)])
def test_chunked_heads_equal_the_grouped_convolutions(num_classes: int, chunk: int) -> None:
    generator = torch.Generator().manual_seed(num_classes)
    features = torch.randn(1, 8, 17, 19, 23, generator=generator)  # 7429 voxels: chunks do not divide it
    params = torch.randn(num_classes, NUM_DYNAMIC_PARAMS, generator=generator)
    expected = apply_dynamic_heads(features, params)
    got = apply_dynamic_heads_by_chunks(features, params, chunk=chunk)
    assert got.shape == expected.shape == (1, num_classes, 17, 19, 23)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


def test_chunked_heads_compute_in_float32_under_autocast() -> None:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, 8, 8, 8, 8, generator=generator)
    params = torch.randn(2, NUM_DYNAMIC_PARAMS, generator=generator)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = apply_dynamic_heads_by_chunks(features.bfloat16(), params)
    assert got.dtype == torch.float32
    expected = apply_dynamic_heads(features.bfloat16().float(), params)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())
