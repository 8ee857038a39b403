"""The PyTorch engine: the model itself is the predictor (on any device, under the run's autocast)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .base import ClassLogits

if TYPE_CHECKING:
    import torch

    from ...progress import ProgressReporter
    from ..options import InferenceOptions
    from ..sliding_window import Predictor


class TorchEngine:
    """The official computation: the model's forward pass, class heads as grouped convolutions."""

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
    ) -> Predictor:
        return model

    def class_logits(self, model: Any) -> ClassLogits:
        return model.class_logits
