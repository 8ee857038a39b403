"""``UniversalModel``: the CLIP-Driven Universal Model with the official state-dict layout."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from UniversalSegLib.model.class_names import default_class_names
from UniversalSegLib.model.dynamic_heads import NUM_DYNAMIC_PARAMS, apply_dynamic_heads
from UniversalSegLib.model.swin_backbone import SwinUNETRBackbone
from UniversalSegLib.model.unet_backbone import UNet3DBackbone
from UniversalSegLib.run_choices import MODEL_NAMES

#: The backbones this model builds: the released models (declared once in ``UniversalSegLib.run_choices``).
BACKBONES: tuple[str, ...] = MODEL_NAMES
ENCODINGS: tuple[str, ...] = ("word_embedding", "rand_embedding")
TEXT_EMBEDDING_DIM = 512
TASK_EMBEDDING_DIM = 256
GAP_GROUPS = 16
DEFAULT_NUM_CLASSES = 32


def build_backbone(name: str, per_sample_norm: bool = False) -> nn.Module:
    """Create the backbone called ``name`` (``"swinunetr"`` or ``"unet"``)."""
    if name == "swinunetr":
        return SwinUNETRBackbone()
    if name == "unet":
        return UNet3DBackbone(per_sample_norm=per_sample_norm)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")


class UniversalModel(nn.Module):
    """Backbone + text-conditioned dynamic heads; outputs ``[B, K, D, H, W]`` float logits.

    Args:
        backbone: ``"swinunetr"`` (input sides divisible by 32) or ``"unet"`` (divisible by 8).
        num_classes: number of classes (32 for the released weights; more when classes are added by text).
        encoding: ``"word_embedding"`` (CLIP text embeddings in the ``organ_embedding`` buffer [N, 512]) or
            ``"rand_embedding"`` (a learned ``nn.Embedding(N, 256)``).
        per_sample_norm: U-Net only: batch-norm statistics per sample instead of over the batch.
    """

    def __init__(
        self,
        backbone: str = "swinunetr",
        num_classes: int = DEFAULT_NUM_CLASSES,
        encoding: str = "word_embedding",
        per_sample_norm: bool = False,
    ) -> None:
        super().__init__()
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; choose one of {', '.join(ENCODINGS)}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes}")
        # Registration order reproduces the official state-dict key order.
        if encoding == "word_embedding":
            self.register_buffer("organ_embedding", torch.randn(num_classes, TEXT_EMBEDDING_DIM))
        self.backbone = build_backbone(backbone, per_sample_norm)
        bottleneck_channels = self.backbone.bottleneck_channels
        decoder_channels = self.backbone.decoder_channels
        self.precls_conv = nn.Sequential(
            nn.GroupNorm(GAP_GROUPS, decoder_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(decoder_channels, 8, kernel_size=1),
        )
        self.GAP = nn.Sequential(
            nn.GroupNorm(GAP_GROUPS, bottleneck_channels),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool3d(1),
            nn.Conv3d(bottleneck_channels, TASK_EMBEDDING_DIM, kernel_size=1),
        )
        self.controller = nn.Conv3d(2 * TASK_EMBEDDING_DIM, NUM_DYNAMIC_PARAMS, kernel_size=1)
        if encoding == "rand_embedding":
            self.organ_embedding = nn.Embedding(num_classes, TASK_EMBEDDING_DIM)
        else:
            self.text_to_vision = nn.Linear(TEXT_EMBEDDING_DIM, TASK_EMBEDDING_DIM)
        self.backbone_name = backbone
        self.encoding = encoding
        self.num_classes = num_classes
        #: channel selections already on a device: a fresh index tensor per window would copy from host
        #: memory and wait for the GPU every time
        self._channel_indices: dict[tuple[tuple[int, ...], str], Tensor] = {}
        self.class_names: list[str] = default_class_names(num_classes)
        self.metadata: dict[str, Any] = {}

    @property
    def size_divisor(self) -> int:
        """Every input side must be a multiple of this (32 for swinunetr, 8 for unet)."""
        return int(self.backbone.size_divisor)

    @property
    def per_sample_norm(self) -> bool:
        """U-Net batch-norm statistics per sample (always False for swinunetr, whose norms are per sample)."""
        return bool(getattr(self.backbone, "per_sample_norm", False))

    @per_sample_norm.setter
    def per_sample_norm(self, value: bool) -> None:
        if hasattr(self.backbone, "per_sample_norm"):
            self.backbone.per_sample_norm = value

    def task_encoding(self) -> Tensor:
        """Per-class task vectors ``[N, 256]`` (ReLU(text_to_vision(embedding)) or the learned embedding)."""
        if self.encoding == "rand_embedding":
            return self.organ_embedding.weight
        return nnf.relu(self.text_to_vision(self.organ_embedding))

    def _channel_index(self, channels: Sequence[int] | None, device: torch.device) -> Tensor:
        if channels is None:
            return torch.arange(self.num_classes, device=device)
        selected = [int(c) for c in channels]
        bad = [c for c in selected if not 0 <= c < self.num_classes]
        if not selected or bad:
            raise ValueError(
                f"channels must be a non-empty list of 0-based output channels in [0, {self.num_classes - 1}]"
                f"; got {list(channels)}"
            )
        key = (tuple(selected), str(device))
        index = self._channel_indices.get(key)
        if index is None:
            with torch.inference_mode(False):  # a normal tensor: usable in training too
                index = torch.tensor(selected, dtype=torch.long, device=device)
            self._channel_indices[key] = index
        return index

    def _check_input(self, x: Tensor) -> None:
        if x.dim() != 5 or x.shape[1] != 1:
            raise ValueError(f"expected input [B, 1, D, H, W], got shape {tuple(x.shape)}")
        divisor = self.size_divisor
        if any(side % divisor for side in x.shape[2:]):
            raise ValueError(
                f"{self.backbone_name} needs every spatial side divisible by {divisor}; got "
                f"{tuple(x.shape[2:])} (pad the input or use a suitable roi size)"
            )
        if all(side == divisor for side in x.shape[2:]) and self.backbone_name == "swinunetr":
            raise ValueError(
                "swinunetr needs an input larger than 32³ (its bottleneck would be a single voxel, which "
                "instance norm cannot normalise); use at least one side of 64"
            )

    def forward(self, x: Tensor, channels: Sequence[int] | None = None) -> Tensor:
        """Logits ``[B, len(channels) or N, D, H, W]`` for 0-based output ``channels``, in the given order."""
        self._channel_index(channels, x.device)  # a bad selection fails before the backbone runs
        image, head_features = self.image_features(x)
        return self.class_logits(image, head_features, channels)

    def image_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The class-independent part of :meth:`forward` (backbone, global feature, pre-head convolution).

        Returns:
            the global image feature ``[B, 256]`` and the head input features ``[B, 8, D, H, W]``.
        """
        self._check_input(x)
        bottleneck, full_res = self.backbone(x)
        return self.GAP(bottleneck).flatten(1), self.precls_conv(full_res)

    def class_logits(
        self,
        image: Tensor,
        head_features: Tensor,
        channels: Sequence[int] | None = None,
        heads: Callable[[Tensor, Tensor], Tensor] = apply_dynamic_heads,
    ) -> Tensor:
        """The text-conditioned heads of :meth:`forward` on the outputs of :meth:`image_features`.

        ``heads`` runs one item's heads (default: the official grouped convolutions;
        :func:`~UniversalSegLib.model.dynamic_heads.apply_dynamic_heads_by_chunks` is faster on CPUs).
        """
        index = self._channel_index(channels, image.device)
        task = self.task_encoding().index_select(0, index)  # [K, 256]
        num_selected = task.shape[0]
        condition = torch.cat(
            [
                image.unsqueeze(1).expand(-1, num_selected, -1),
                task.unsqueeze(0).expand(image.shape[0], -1, -1).to(image.dtype),
            ],
            dim=2,
        )  # [B, K, 512]: image feature first, then text
        params = nnf.linear(condition, self.controller.weight.flatten(1), self.controller.bias)  # [B, K, 153]
        outputs = [heads(head_features[b : b + 1], params[b]) for b in range(head_features.shape[0])]
        return torch.cat(outputs, dim=0)

    def extra_repr(self) -> str:
        return f"backbone={self.backbone_name!r}, num_classes={self.num_classes}, encoding={self.encoding!r}"
