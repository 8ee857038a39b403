"""Models-Genesis 3D U-Net backbone of the official model (``model/Unet.py::UNet3D`` layout).

Its batch norm always normalises with the statistics of the current batch, also in ``eval()`` mode.
Running statistics are updated in training mode (as in the official code) but never used; ``eval()``
leaves them untouched, so inference does not change the model's state. ``per_sample_norm`` computes the
statistics per sample so that a batch of windows gives the same numbers as the windows one at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

UNET_BOTTLENECK_CHANNELS = 512
UNET_DECODER_CHANNELS = 64
UNET_SIZE_DIVISOR = 8


class ContBatchNorm3d(nn.modules.batchnorm._BatchNorm):
    """Batch norm that always uses batch statistics (``training=True``), like the official one."""

    def __init__(self, num_features: int, per_sample_norm: bool = False) -> None:
        super().__init__(num_features)
        self.per_sample_norm = per_sample_norm

    def _check_input_dim(self, x: Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"expected a 5-D input [B, C, D, H, W], got {x.dim()}-D")

    def _normalize(self, x: Tensor) -> Tensor:
        track = self.training
        return nnf.batch_norm(
            x,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            True,
            self.momentum,
            self.eps,
        )

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        if self.per_sample_norm and x.shape[0] > 1:
            return torch.cat([self._normalize(x[i : i + 1]) for i in range(x.shape[0])], dim=0)
        return self._normalize(x)


class LUConv(nn.Module):
    """Conv3d(3³, bias) → ContBatchNorm3d → ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1)
        self.bn1 = ContBatchNorm3d(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return nnf.relu(self.bn1(self.conv1(x)))


def _two_convs(in_channels: int, mid_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(LUConv(in_channels, mid_channels), LUConv(mid_channels, out_channels))


class DownTransition(nn.Module):
    """Two LUConvs, then max-pool unless it is the bottleneck; returns ``(output, skip)``."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, pool: bool) -> None:
        super().__init__()
        self.ops = _two_convs(in_channels, mid_channels, out_channels)
        self.maxpool = nn.MaxPool3d(2) if pool else None

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        skip = self.ops(x)
        return (self.maxpool(skip) if self.maxpool is not None else skip), skip


class UpTransition(nn.Module):
    """ConvTranspose3d(2, stride 2), concatenation ``[up, skip]``, then two LUConvs."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up_conv = nn.ConvTranspose3d(in_channels, in_channels, kernel_size=2, stride=2)
        self.ops = _two_convs(in_channels + skip_channels, out_channels, out_channels)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.ops(torch.cat((self.up_conv(x), skip), dim=1))


class UNet3DBackbone(nn.Module):
    """Official U-Net backbone; returns ``(bottleneck [B,512,/8], decoder output [B,64,full])``."""

    bottleneck_channels = UNET_BOTTLENECK_CHANNELS
    decoder_channels = UNET_DECODER_CHANNELS
    size_divisor = UNET_SIZE_DIVISOR

    def __init__(self, in_channels: int = 1, per_sample_norm: bool = False) -> None:
        super().__init__()
        self.down_tr64 = DownTransition(in_channels, 32, 64, pool=True)
        self.down_tr128 = DownTransition(64, 64, 128, pool=True)
        self.down_tr256 = DownTransition(128, 128, 256, pool=True)
        self.down_tr512 = DownTransition(256, 256, 512, pool=False)
        self.up_tr256 = UpTransition(512, 256, 256)
        self.up_tr128 = UpTransition(256, 128, 128)
        self.up_tr64 = UpTransition(128, 64, 64)
        self.per_sample_norm = per_sample_norm

    @property
    def per_sample_norm(self) -> bool:
        """Whether every batch norm computes its statistics per sample instead of over the batch."""
        return self._per_sample_norm

    @per_sample_norm.setter
    def per_sample_norm(self, value: bool) -> None:
        self._per_sample_norm = bool(value)
        for module in self.modules():
            if isinstance(module, ContBatchNorm3d):
                module.per_sample_norm = self._per_sample_norm

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out64, skip64 = self.down_tr64(x)
        out128, skip128 = self.down_tr128(out64)
        out256, skip256 = self.down_tr256(out128)
        bottleneck, _ = self.down_tr512(out256)
        up = self.up_tr256(bottleneck, skip256)
        up = self.up_tr128(up, skip128)
        return bottleneck, self.up_tr64(up, skip64)
