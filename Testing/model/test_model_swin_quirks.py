"""Swin backbone quirks: the official patch-merging slice order and the stage-4 relative-position slice."""

from __future__ import annotations

import itertools

import pytest
import torch
from monai.networks.nets.swin_unetr import WindowAttention, get_window_size
from torch import nn

from UniversalSegLib.model import OfficialPatchMerging, UniversalModel


def test_patch_merging_uses_the_official_slice_order():
    merge = OfficialPatchMerging(dim=1)
    merge.norm, merge.reduction = nn.Identity(), nn.Identity()
    x = torch.arange(4 * 4 * 4, dtype=torch.float32).reshape(1, 4, 4, 4, 1)
    out = merge(x)
    parities = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 0), (0, 0, 1), (1, 1, 1)]
    expected = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in parities], dim=-1)
    assert torch.equal(out, expected)
    # The duplicated slices are really duplicates and two parities never appear.
    assert torch.equal(out[..., 2], out[..., 5]) and torch.equal(out[..., 3], out[..., 6])
    used = {tuple(p) for p in parities}
    assert (1, 1, 0) not in used and (0, 1, 1) not in used


def test_model_uses_official_patch_merging_in_every_stage():
    model = UniversalModel("swinunetr")
    stages = [model.backbone.swinViT.layers1, model.backbone.swinViT.layers2]
    stages += [model.backbone.swinViT.layers3, model.backbone.swinViT.layers4]
    assert all(isinstance(stage[0].downsample, OfficialPatchMerging) for stage in stages)


def _true_relative_position_index(side: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(*[torch.arange(side)] * 3, indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + 6  # offsets for a 7-window table
    return relative[..., 0] * 169 + relative[..., 1] * 13 + relative[..., 2]


def test_relative_position_index_is_the_7_cubed_index():
    model = UniversalModel("swinunetr")
    index = model.backbone.swinViT.layers4[0].blocks[0].attn.relative_position_index
    assert index.shape == (343, 343) and index.dtype == torch.int64
    assert torch.equal(index, _true_relative_position_index(7))


def test_stage4_six_cubed_window_slices_the_7_cubed_index():
    """A 96³ input gives a 6³ stage-4 window; the bias comes from index[:216, :216], not the true 6³ index."""
    window, shift = get_window_size((6, 6, 6), (7, 7, 7), (3, 3, 3))
    assert window == (6, 6, 6) and shift == (0, 0, 0)
    torch.manual_seed(0)
    attention = WindowAttention(dim=24, num_heads=2, window_size=(7, 7, 7)).eval()
    nn.init.normal_(attention.relative_position_bias_table, std=1.0)
    n = 216
    x = torch.randn(1, n, 24)

    def reference(index: torch.Tensor) -> torch.Tensor:
        q, k, v = attention.qkv(x).reshape(1, n, 3, 2, 12).permute(2, 0, 3, 1, 4)
        bias = attention.relative_position_bias_table[index.reshape(-1)].reshape(n, n, -1).permute(2, 0, 1)
        weights = ((q * attention.scale) @ k.transpose(-2, -1) + bias).softmax(-1)
        return attention.proj((weights @ v).transpose(1, 2).reshape(1, n, 24))

    with torch.no_grad():
        out = attention(x, None)
        quirk = reference(attention.relative_position_index[:n, :n])
        true_index = reference(_true_relative_position_index(6))
    torch.testing.assert_close(out, quirk, atol=1e-5, rtol=1e-5)
    assert (out - true_index).abs().max() > 1e-2
    assert not torch.equal(attention.relative_position_index[:n, :n], _true_relative_position_index(6))
    assert len(list(itertools.islice(attention.parameters(), 1))) == 1


def _two_items_of_27_windows(attention, shifted: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Tokens of 2 items × 27 windows of 7³ for ``attention``, and (shifted) one mask per window as MONAI
    builds it: 0 within a region, -100 across regions."""
    windows, tokens = 27, 343
    x = torch.randn(2 * windows, tokens, attention.qkv.in_features)
    if not shifted:
        return x, None
    regions = torch.randint(0, 3, (windows, tokens))
    return x, torch.where(regions[:, :, None] == regions[:, None, :], 0.0, -100.0)


@pytest.mark.parametrize("shifted", [False, True])
def test_chunked_window_attention_equals_all_windows_at_once(shifted):
    """Inference computes a few attention windows at a time (less memory); the numbers do not change, for
    plain windows and for shifted ones (one mask per window, shared by the items), with a last chunk that
    is shorter than the others."""
    from UniversalSegLib.model.swin_backbone import ChunkedWindowAttention

    torch.manual_seed(0)
    model = UniversalModel("swinunetr").eval()
    attentions = [m for m in model.modules() if isinstance(m, WindowAttention)]
    assert attentions and all(type(m) is ChunkedWindowAttention for m in attentions)
    assert not any("inner" in key for key in model.state_dict())  # parameter names untouched
    attention = attentions[0]
    x, mask = _two_items_of_27_windows(attention, shifted)
    default = ChunkedWindowAttention.windows_per_pass
    try:
        with torch.no_grad():
            ChunkedWindowAttention.windows_per_pass = 10_000  # all windows at once
            reference = attention(x, mask)
            ChunkedWindowAttention.windows_per_pass = 5  # 27 windows: chunks of 5 and a last one of 2
            chunked = attention(x, mask)
    finally:
        ChunkedWindowAttention.windows_per_pass = default
    torch.testing.assert_close(reference, WindowAttention.forward(attention, x, mask), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(chunked, reference, atol=1e-5, rtol=1e-5)


def test_inference_frees_full_resolution_tensors_without_changing_numbers():
    """Without gradients the last decoder block releases each 96³ tensor early; logits stay bit-identical
    to MONAI's own ``decoder1(dec, encoder1(x))`` (the training path) and gradients still flow."""
    torch.manual_seed(0)
    model = UniversalModel("swinunetr").eval()
    x = torch.rand(1, 1, 64, 32, 32)  # about the smallest input Swin UNETR takes; the block is as at 96³
    with torch.no_grad():
        lean = model(x, channels=[0, 5])
    backbone = model.backbone
    plain = backbone._full_resolution_block
    backbone._full_resolution_block = lambda dec, image: backbone.decoder1(dec, backbone.encoder1(image))
    try:
        with torch.no_grad():
            reference = model(x, channels=[0, 5])
    finally:
        backbone._full_resolution_block = plain
    assert torch.equal(lean, reference)
    with torch.enable_grad():
        trained = model(x, channels=[0, 5])
        trained.sum().backward()
    assert torch.equal(trained.detach(), reference)
    assert backbone.encoder1.layer.conv1.conv.weight.grad is not None


@pytest.mark.parametrize("shifted", [False, True])
def test_fused_window_attention_of_cuda_equals_monai_attention(shifted):
    """On CUDA inference the attention runs as scaled_dot_product_attention with the bias (and the shifted
    windows' mask) as an additive mask; here the same code runs on the CPU against MONAI's attention, for
    two items of 27 windows each (the mask is per window, broadcast over items)."""
    from UniversalSegLib.model.swin_backbone import ChunkedWindowAttention

    torch.manual_seed(0)
    model = UniversalModel("swinunetr").eval()
    attention = next(m for m in model.modules() if isinstance(m, ChunkedWindowAttention))
    x, mask = _two_items_of_27_windows(attention, shifted)
    with torch.no_grad():
        reference = WindowAttention.forward(attention, x, mask)
        fused = attention.fused_forward(x, mask)
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)
