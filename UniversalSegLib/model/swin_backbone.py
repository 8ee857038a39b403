"""Swin UNETR backbone of the official model, built on MONAI's ``SwinUNETR``.

MONAI's network (``use_v2=False``) reproduces the official backbone bit-exactly once its patch merging
concatenates the eight sub-grids in the official order (:class:`OfficialPatchMerging`). The output block is
dropped: the backbone returns the bottleneck feature and the full-resolution decoder feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from monai.networks.blocks.dynunet_block import UnetResBlock
from monai.networks.nets.swin_unetr import PatchMergingV2, SwinUNETR, WindowAttention
from torch import Tensor

#: (depth, height, width) parities of the eight slices, in the official concatenation order. Two parities
#: repeat and (1,1,0), (0,1,1) are never used: this is the legacy behaviour the released weights expect.
OFFICIAL_MERGE_ORDER: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (1, 0, 1),
    (0, 1, 0),
    (0, 0, 1),
    (1, 1, 1),
)

SWIN_FEATURE_SIZE = 48
SWIN_BOTTLENECK_CHANNELS = 16 * SWIN_FEATURE_SIZE
SWIN_DECODER_CHANNELS = SWIN_FEATURE_SIZE
SWIN_SIZE_DIVISOR = 32
#: Attention windows computed together at inference. The first stage of a 96³ input has 343 windows whose
#: attention matrices (3 heads × 343² each) take about 0.5 GB per copy when computed all at once.
ATTENTION_WINDOWS_PER_PASS = 49


class OfficialPatchMerging(PatchMergingV2):
    """Patch merging with the official (quirky) slice order; input is channels-last [B, D, H, W, C]."""

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5:
            raise ValueError(
                f"OfficialPatchMerging expects a 5-D channels-last tensor, got shape {tuple(x.shape)}"
            )
        _, d, h, w, _ = x.shape
        if d % 2 or h % 2 or w % 2:
            x = nnf.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2, :] for i, j, k in OFFICIAL_MERGE_ORDER], dim=-1)
        return self.reduction(self.norm(x))


class ChunkedWindowAttention(WindowAttention):
    """MONAI's window attention, computed a few windows at a time at inference.

    Each window's attention is independent of the others, so the result is the same as all at once
    while the peak memory of a 96³ forward pass drops by about 1 GB. On CUDA GPUs each group of windows
    runs as one fused ``scaled_dot_product_attention`` (:meth:`fused_forward`), which never writes the
    attention matrices to memory. With gradients (training) it runs unchanged. Installed by switching the
    class of MONAI's modules, so parameter names stay the same.
    """

    windows_per_pass = ATTENTION_WINDOWS_PER_PASS

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        if torch.is_grad_enabled():
            return super().forward(x, mask)
        attend = self.fused_forward if x.device.type == "cuda" else super().forward
        windows = x.shape[0] if mask is None else mask.shape[0]
        if windows <= self.windows_per_pass:
            return attend(x, mask)
        items = x.shape[0] // windows
        grouped = x.view(items, windows, *x.shape[1:])
        outputs = []
        for first in range(0, windows, self.windows_per_pass):
            last = min(first + self.windows_per_pass, windows)
            part = grouped[:, first:last].reshape(-1, *x.shape[1:])
            part_mask = None if mask is None else mask[first:last]
            outputs.append(attend(part, part_mask).view(items, last - first, *x.shape[1:]))
        return torch.cat(outputs, dim=1).view(x.shape)

    def fused_forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        """The same attention through ``scaled_dot_product_attention``: the relative position bias (plus
        the shifted windows' mask) is its additive mask. Inputs stay 4-D, which the fused kernels need."""
        batch, tokens, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch, tokens, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)  # [batch, heads, tokens, channels per head]
        index = self.relative_position_index[:tokens, :tokens].reshape(-1)
        bias = self.relative_position_bias_table[index].reshape(tokens, tokens, heads).permute(2, 0, 1)
        if mask is None:
            bias = bias.unsqueeze(0)  # one bias for every window
        else:  # batch = items × windows, one mask per window
            windows = mask.shape[0]
            per_window = bias.unsqueeze(0) + mask.unsqueeze(1)  # [windows, heads, tokens, tokens]
            bias = per_window.expand(batch // windows, -1, -1, -1, -1).reshape(batch, heads, tokens, tokens)
        attended = nnf.scaled_dot_product_attention(
            query, key, value, attn_mask=bias.to(query.dtype), scale=self.scale
        )
        return self.proj_drop(self.proj(attended.transpose(1, 2).reshape(batch, tokens, channels)))


class SwinUNETRBackbone(SwinUNETR):
    """Official Swin UNETR backbone (feature size 48, no output block); returns (bottleneck, full-res)."""

    bottleneck_channels = SWIN_BOTTLENECK_CHANNELS
    decoder_channels = SWIN_DECODER_CHANNELS
    size_divisor = SWIN_SIZE_DIVISOR

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__(
            in_channels=in_channels,
            out_channels=1,
            feature_size=SWIN_FEATURE_SIZE,
            use_v2=False,
            downsample=OfficialPatchMerging,
        )
        del self.out
        for module in self.modules():
            if type(module) is WindowAttention:
                module.__class__ = ChunkedWindowAttention

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Return ``(encoder10 output [B,768,/32], decoder1 output [B,48,full])``."""
        with_gradients = torch.is_grad_enabled()  # without them the last block frees memory early
        hidden = self.swinViT(x, self.normalize)
        enc0 = self.encoder1(x) if with_gradients else None
        enc1 = self.encoder2(hidden[0])
        enc2 = self.encoder3(hidden[1])
        enc3 = self.encoder4(hidden[2])
        bottleneck = self.encoder10(hidden[4])
        dec = self.decoder5(bottleneck, hidden[3])
        del hidden
        dec = self.decoder4(dec, enc3)
        dec = self.decoder3(dec, enc2)
        dec = self.decoder2(dec, enc1)
        if with_gradients:
            return bottleneck, self.decoder1(dec, enc0)
        return bottleneck, self._full_resolution_block(dec, x)

    def _full_resolution_block(self, dec: Tensor, x: Tensor) -> Tensor:
        """``decoder1(dec, encoder1(x))`` with each full-resolution tensor freed as soon as it is used.

        The same operations as MONAI's ``UnetrUpBlock``/``UnetResBlock`` in the same arithmetic, so the
        result is bit-identical; only the order in which independent tensors are computed and released
        changes. At 96³ each full-resolution tensor takes 170 MB (48 channels), and this keeps at most
        four of them alive instead of six.
        """
        block = self.decoder1
        res = block.conv_block
        if not (isinstance(res, UnetResBlock) and hasattr(res, "conv3") and hasattr(res, "norm3")):
            return block(dec, self.encoder1(x))
        merged = torch.cat((block.transp_conv(dec), self.encoder1(x)), dim=1)
        residual = res.norm3(res.conv3(merged))
        out = res.conv1(merged)
        del merged
        out = res.norm2(res.conv2(res.lrelu(res.norm1(out))))
        out += residual
        del residual
        return res.lrelu(out)
