"""Inference engine: SimpleITK CT → per-class uint8 masks on the input grid (MODEL_SPEC §3)."""

from __future__ import annotations

from .errors import InferenceError, SegmentationCancelled
from .options import InferenceOptions
from .pipeline import SegmentationResult, segment
from .sliding_window import Predictor

__all__ = [
    "InferenceError",
    "InferenceOptions",
    "Predictor",
    "SegmentationCancelled",
    "SegmentationResult",
    "segment",
]
