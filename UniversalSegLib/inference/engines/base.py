"""The one interface through which the pipeline runs the network: :class:`Engine`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from ...progress import ProgressReporter
    from ..options import InferenceOptions
    from ..sliding_window import Predictor

#: ``class_logits(image, head_features, channels) -> logits``: the class heads of a split predictor.
ClassLogits = Callable[..., "torch.Tensor"]


class Engine(Protocol):
    """One way to compute a model's logits on sliding windows (``torch``, ``openvino``).

    Attributes:
        name: the engine's name in :data:`~UniversalSegLib.inference.options.ENGINES` and in the feature
            cache's keys.
    """

    name: str

    def unavailable_reason(self, model: Any, device: torch.device) -> str | None:
        """Why this engine cannot run ``model`` on ``device`` (the run then uses ``torch`` and warns with
        this text), or ``None`` when it can."""
        ...

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
        """The sliding window's predictor for ``model`` at ``precision`` on ``device``; preparing it (an
        OpenVINO conversion, say) reports on ``reporter`` and stops as soon as ``cancel`` is set. What the
        user should know about the run (a compiled encoder falling back, say) goes to ``warnings``, also
        while the predictor runs."""
        ...

    def class_logits(self, model: Any, device: torch.device) -> ClassLogits:
        """The class heads exactly as this engine's predictor computes them on ``device``, for answering a
        re-query from stored image features without running the encoder (the feature cache)."""
        ...


def splits_features(predictor: Any) -> bool:
    """Whether ``predictor`` exposes ``image_features`` and ``class_logits`` (the CPU heads and the feature
    cache need both)."""
    return callable(getattr(predictor, "image_features", None)) and callable(
        getattr(predictor, "class_logits", None)
    )
