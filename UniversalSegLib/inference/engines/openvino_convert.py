"""Converting the class-independent image encoder of a UniversalModel into an OpenVINO model.

Run once per model and window size, in a child process (:mod:`.openvino_prepare`); the result is stored by
:mod:`.openvino_encoder`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import import_optional

ENCODER_FILE = "encoder.xml"


def require_openvino() -> Any:
    """The ``openvino`` module, or an :class:`InferenceError` that says how to install it."""
    return import_optional(
        "openvino",
        "engine 'openvino' needs the OpenVINO runtime: run `python -m pip install openvino`, or choose "
        "--engine torch",
    )


class _Encoder(torch.nn.Module):
    """``x -> (global image feature, head features)``: the part of the model that OpenVINO runs."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.image_features(x)


def convert_encoder(model: torch.nn.Module, roi: Sequence[int], ov: Any) -> Any:
    """The encoder as an OpenVINO model with a static ``[1, 1, *roi]`` input (about a minute for the Swin
    UNETR; :mod:`.openvino_prepare` runs it in a child process)."""
    example = torch.zeros(1, 1, *[int(r) for r in roi])
    encoder = _Encoder(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks that are constant here
        return ov.convert_model(encoder, example_input=example, input=[tuple(example.shape)])


def save_encoder(converted: Any, folder: Path, ov: Any) -> None:
    """Save an OpenVINO model as ``folder/encoder.xml`` (and ``.bin``), weights kept in float32."""
    folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(converted, str(folder / ENCODER_FILE), compress_to_fp16=False)
