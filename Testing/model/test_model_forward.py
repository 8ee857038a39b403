"""Forward passes on a real CT crop: shapes, channel subsets, per-sample batch norm, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK
import torch

from UniversalSegLib.testing import random_model

CROP = 64


@pytest.fixture(scope="module")
def ct_crop(ct_dir) -> torch.Tensor:
    """A 64³ crop of a real abdomen CT, scaled as the official pipeline ((HU+175)/425, clipped to [0, 1])."""
    image = SimpleITK.ReadImage(str(ct_dir / "totalseg_example" / "example_ct.nii.gz"))
    array = SimpleITK.GetArrayFromImage(image)
    starts = [(side - CROP) // 2 for side in array.shape]
    crop = array[tuple(slice(start, start + CROP) for start in starts)].astype(np.float32)
    scaled = np.clip((crop + 175.0) / 425.0, 0.0, 1.0)
    assert 0.05 < scaled.mean() < 0.95  # a real, non-empty crop
    return torch.from_numpy(scaled)[None, None]


@pytest.fixture(scope="module", params=["swinunetr", "unet"])
def full_output(request, ct_crop):
    model = random_model(request.param, seed=1)
    with torch.no_grad():
        logits = model(ct_crop)
    return model, logits


def test_forward_gives_finite_logits_for_32_classes(full_output):
    _, logits = full_output
    assert logits.shape == (1, 32, CROP, CROP, CROP)
    assert logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    assert logits.std() > 0


def test_channel_subset_equals_matching_full_channels(full_output, ct_crop):
    model, _ = full_output
    x = ct_crop[..., 16:48, 16:48]  # 64×32×32: the smallest input whose swin bottleneck has 2 voxels
    channels = [26, 0, 5, 31]
    with torch.no_grad():
        logits = model(x)
        subset = model(x, channels=channels)
    assert subset.shape == (1, 4, CROP, 32, 32)
    torch.testing.assert_close(subset, logits[:, channels], atol=1e-5, rtol=1e-5)


def test_invalid_channels_and_sizes_are_rejected():
    model = random_model("unet")
    with pytest.raises(ValueError, match="channels"):
        model(torch.zeros(1, 1, 16, 16, 16), channels=[32])
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.zeros(1, 1, 20, 16, 16))
    with pytest.raises(ValueError, match=r"\[B, 1, D, H, W\]"):
        model(torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match="larger than 32"):
        random_model("swinunetr")(torch.zeros(1, 1, 32, 32, 32))


def test_unet_norm_uses_batch_statistics_in_eval(ct_crop):
    model = random_model("unet", seed=2)
    x = ct_crop[..., 24:40, 24:40, 24:40]
    other = torch.rand_like(x)
    with torch.no_grad():
        alone = model(x, channels=[0])
        in_batch = model(torch.cat([x, other]), channels=[0])[:1]
    assert not model.training
    assert (alone - in_batch).abs().max() > 1e-3  # official behaviour: the batch changes the result


def test_inference_leaves_the_model_state_untouched(ct_crop):
    """The U-Net's unused running statistics change only in training mode, never during inference."""
    model = random_model("unet", seed=2)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        model(ct_crop[..., 24:40, 24:40, 24:40], channels=[0])
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    model.train()
    model(ct_crop[..., 24:40, 24:40, 24:40], channels=[0])
    key = "backbone.down_tr64.ops.0.bn1.running_mean"
    assert not torch.equal(before[key], model.state_dict()[key])  # training still updates them


def test_per_sample_norm_batch_equals_single_windows(ct_crop):
    model = random_model("unet", seed=3)
    model.per_sample_norm = True
    assert model.per_sample_norm
    windows = torch.cat(
        [ct_crop[..., 16:32, 16:32, 16:32], ct_crop[..., 32:48, 32:48, 32:48], torch.rand(1, 1, 16, 16, 16)]
    )
    with torch.no_grad():
        batched = model(windows, channels=[5, 10])
        single = torch.cat([model(window[None], channels=[5, 10]) for window in windows])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)
