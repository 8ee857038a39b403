"""Sliding-window predictors that record image features into, or replay them from, the feature cache."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import torch

from .engines.base import ClassLogits
from .feature_cache import FeatureRecorder, StoredFeatures

logger = logging.getLogger(__name__)


class FeaturePredictor(Protocol):
    """A predictor split into its class-independent and its class-dependent part."""

    def image_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def class_logits(
        self, image: torch.Tensor, head_features: torch.Tensor, channels: Sequence[int] | None = None
    ) -> torch.Tensor: ...


class RecordingPredictor:
    """Runs ``predictor`` and hands each batch's image features to a recorder before the heads run.

    The recorder is made by ``start(compute_dtype, head_shape)`` at the first window, when the dtype and
    shape of the features are known; ``start`` may return None (nothing is recorded then).
    """

    def __init__(
        self,
        predictor: FeaturePredictor,
        start: Callable[[torch.dtype, tuple[int, ...]], FeatureRecorder | None],
    ) -> None:
        self.predictor, self.start = predictor, start
        self.recorder: FeatureRecorder | None = None
        self.started = False

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        image, head_features = self.predictor.image_features(x)
        if not self.started:
            self.started = True
            self.recorder = self.start(head_features.dtype, tuple(head_features.shape[1:]))
        if self.recorder is not None:
            try:
                self.recorder.add(image, head_features)
            except OSError as exc:  # a full disk costs the kept features, never the run
                logger.warning("Image features are not kept for later questions: %s", exc)
                self.recorder.abort()
                self.recorder = None
        return self.predictor.class_logits(image, head_features, channels)


class ReplayPredictor:
    """Answers the sliding window's windows, in its visiting order, from stored image features.

    ``class_logits`` is the recording engine's own head function (:meth:`.engines.base.Engine.class_logits`:
    grouped convolutions for ``torch``, chunked matrix products for ``openvino``), so replaying needs
    neither the encoder nor an OpenVINO model.
    """

    def __init__(self, stored: StoredFeatures, class_logits: ClassLogits) -> None:
        self.stored, self.class_logits = stored, class_logits
        self.position = 0

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        count = x.shape[0]
        image, head_features = self.stored.window_features(self.position, self.position + count)
        self.position += count
        return self.class_logits(image.to(x.device), head_features.to(x.device), channels)
