"""The PyTorch engine: the model's own forward pass (on any device, under the run's autocast).

On the CPU the class heads run as float32 matrix products over chunks of voxels
(:func:`~UniversalSegLib.model.dynamic_heads.apply_dynamic_heads_by_chunks`): the same function as the
official grouped 1×1×1 convolutions up to float rounding, and 8-10x faster on a CPU (0.07 s against 0.6 s per
96³ window and 2 classes on 2 cores), which is what lets a re-query from stored image features finish in
seconds. On GPUs the heads stay the official grouped convolutions, and the encoder may run through
``torch.compile`` (:mod:`.torch_compile`, ``InferenceOptions.compile``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...model.dynamic_heads import apply_dynamic_heads_by_chunks
from .base import ClassLogits, splits_features
from .torch_compile import CompiledImageFeatures, FeatureFunction, compiles_on

if TYPE_CHECKING:
    import torch

    from ...progress import ProgressReporter
    from ..options import InferenceOptions
    from ..sliding_window import Predictor


class TorchSplitPredictor:
    """``model``'s image features (through ``encoder`` when given: the compiled one), then the class heads
    through ``heads`` (the CPU's chunked products, or the model's own)."""

    def __init__(self, model: Any, heads: ClassLogits, encoder: FeatureFunction | None = None) -> None:
        self.model, self.heads = model, heads
        self.encoder = encoder or model.image_features

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        self.model._channel_index(channels, x.device)  # a bad selection fails before the backbone runs
        return self.class_logits(*self.image_features(x), channels)

    def image_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder(x)

    def class_logits(
        self, image: torch.Tensor, head_features: torch.Tensor, channels: Sequence[int] | None = None
    ) -> torch.Tensor:
        return self.heads(image, head_features, channels)


class TorchEngine:
    """The model's forward pass; class heads as chunked matrix products on the CPU, convolutions elsewhere."""

    name = "torch"

    def unavailable_reason(self, model: Any, device: torch.device) -> str | None:
        return None

    def predictor(
        self,
        model: Any,
        options: InferenceOptions,
        device: torch.device,
        precision: str,
        reporter: ProgressReporter,
        cancel: threading.Event | None,
        warnings: list[str] | None = None,
    ) -> Predictor:
        if not splits_features(model):
            return model
        if compiles_on(options, device):
            return TorchSplitPredictor(
                model, self.class_logits(model, device), CompiledImageFeatures(model, warnings)
            )
        if device.type == "cpu":
            return TorchSplitPredictor(model, self.class_logits(model, device))
        return model

    def class_logits(self, model: Any, device: torch.device) -> ClassLogits:
        if device.type == "cpu":
            return functools.partial(model.class_logits, heads=apply_dynamic_heads_by_chunks)
        return model.class_logits
