"""The OpenVINO CPU engine: the class-independent image encoder compiled by OpenVINO, the heads in PyTorch.

On a 2-core AVX512-BF16 CPU, a Swin UNETR window with 8 classes takes 4.5 s in fp32 (PyTorch: 8.4 s; masks
equal up to float rounding) and 2.2 s in bf16 (docs/speed.md). The encoder (backbone, global feature,
pre-head convolution: :meth:`UniversalModel.image_features`) does not depend on the selected classes, so
one converted model serves every class selection (converted once and cached: :mod:`.openvino_encoder`);
the tiny per-class heads (:meth:`class_logits`) stay in PyTorch. ``precision="int8"`` (the ``fast`` speed
mode on CPUs) runs the encoder quantized once with NNCF (:mod:`.openvino_quantize`): 1.3-1.5 s per window
instead of 2.0-2.2 s in bf16 (docs/speed.md).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from ...model.dynamic_heads import apply_dynamic_heads_by_chunks
from ..errors import InferenceError
from .base import ClassLogits
from .openvino_encoder import compiled_encoder

if TYPE_CHECKING:
    from ...progress import ProgressReporter
    from ..options import InferenceOptions


def openvino_class_logits(model: Any) -> ClassLogits:
    """``model``'s class heads as this engine runs them: chunked float32 matrix products
    (:func:`~UniversalSegLib.model.dynamic_heads.apply_dynamic_heads_by_chunks`)."""
    return functools.partial(model.class_logits, heads=apply_dynamic_heads_by_chunks)


class OpenVINOEngine:
    """The encoder in OpenVINO on the CPU (a UniversalModel only), the heads as matrix products."""

    name = "openvino"

    def unavailable_reason(self, model: Any, device: torch.device) -> str | None:
        if device.type != "cpu":
            return f"engine openvino runs on the CPU only; used torch on {device}"
        if not hasattr(model, "image_features"):
            return "engine openvino needs a UniversalModel; used torch for this predictor"
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
    ) -> OpenVINOPredictor:
        """The compiled encoder (a first conversion stops as soon as ``cancel`` is set) behind a predictor."""
        reporter("compile", 0, 1)
        compiled = compiled_encoder(
            model,
            [int(options.roi_size)] * 3,
            precision,
            threads=options.threads,
            status=lambda message: reporter("compile", 0, 1, message),
            cancel=cancel,
        )
        reporter("compile", 1, 1)
        return OpenVINOPredictor(model, compiled)

    def class_logits(self, model: Any, device: torch.device) -> ClassLogits:
        return openvino_class_logits(model)


class OpenVINOPredictor:
    """A :class:`~UniversalSegLib.inference.sliding_window.Predictor` that runs the encoder in OpenVINO.

    Windows of a batch run one at a time through the compiled encoder (static shape ``[1, 1, *roi]``);
    the heads of the selected ``channels`` then run in PyTorch as in :meth:`UniversalModel.forward`, as
    float32 matrix products (:func:`~UniversalSegLib.model.dynamic_heads.apply_dynamic_heads_by_chunks`:
    0.04 s per 96³ window and 8 classes, against 0.35 s for bf16 convolutions).
    """

    def __init__(self, model: torch.nn.Module, compiled: Any) -> None:
        self.model = model
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.num_classes = int(getattr(model, "num_classes", 0))
        self.heads = openvino_class_logits(model)

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        return self.class_logits(*self.image_features(x), channels)

    def image_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global features ``[B, 256]`` and head features ``[B, 8, D, H, W]`` from the compiled encoder."""
        if x.device.type != "cpu":
            raise InferenceError(f"the OpenVINO engine runs on the CPU; got a window on {x.device}")
        images, head_features = [], []
        for window in x.float():
            result = self.request.infer([window[None].contiguous().numpy()])
            images.append(torch.from_numpy(result[0].copy()))
            head_features.append(torch.from_numpy(result[1].copy()))
        return torch.cat(images), torch.cat(head_features)

    def class_logits(
        self, image: torch.Tensor, head_features: torch.Tensor, channels: Sequence[int] | None = None
    ) -> torch.Tensor:
        """The heads of ``channels`` as float32 matrix products (one window at a time, as the model does)."""
        return self.heads(image, head_features, channels)
