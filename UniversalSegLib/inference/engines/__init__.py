"""Engines: the ways the network runs on sliding windows, each behind :class:`~.base.Engine`.

``torch_engine`` (PyTorch, any device) and ``openvino_engine`` (the encoder compiled by OpenVINO on the CPU,
with its conversion cache ``openvino_encoder``, the conversion ``openvino_convert`` run in a child process
by ``openvino_prepare``, and int8 quantization ``openvino_quantize`` calibrated on the synthetic CT of
``calibration``). The pipeline picks one with :func:`~.selection.choose_engine`.

Attributes are imported lazily: the child process that converts a model imports only what it needs.
"""

from __future__ import annotations

from UniversalSegLib.lazy_exports import lazy_getattr

_LAZY_ATTRIBUTES: dict[str, str] = {
    "Engine": "UniversalSegLib.inference.engines.base",
    "choose_engine": "UniversalSegLib.inference.engines.selection",
    "engine_named": "UniversalSegLib.inference.engines.selection",
}

__all__ = list(_LAZY_ATTRIBUTES)

__getattr__ = lazy_getattr(__name__, _LAZY_ATTRIBUTES)
