"""int8 post-training quantization of the converted encoder with NNCF (``--precision int8``, opt-in).

NNCF (OpenVINO's quantization library) inserts int8 quantizers after a calibration pass over a few
windows of the synthetic abdomen CT (:mod:`~UniversalSegLib.inference.calibration`). What stays in
floating point was chosen by measuring the flipped voxels of each variant on the fitted stand-in model
(docs/speed.md):

- the transformer's matrix products (quantizing them too was no more accurate and slower: 1.8 s per window
  against 1.5 s);
- the convolutions that read the CT itself (8-bit intensity steps of 1.7 HU cost the most fidelity);
- the pre-head convolution, whose output the per-class heads read directly.

The other convolutions, which carry most of the work at full resolution, run in int8. On the fitted stand-in
model that is 5.5x faster than faithful end to end, with per-class Dice 0.91-0.996 against faithful; keeping
the two convolutions that read the full-resolution concatenation in float too gave Dice 0.964-0.995 at only
1.15x the speed of bf16, so neither meets the project's 5x-at-Dice-0.97 goal and int8 is no speed preset.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

from .errors import InferenceError, import_optional

#: Part of the stored folder's name: a new scheme never reads an int8 model made by an older one.
QUANTIZATION_VERSION = "1"
INT8_FOLDER = f"int8-v{QUANTIZATION_VERSION}"
CALIBRATION_WINDOWS = 8
_CONVOLUTIONS = frozenset({"Convolution", "GroupConvolution", "ConvolutionBackpropData"})


def require_nncf() -> Any:
    """The ``nncf`` module, or an :class:`InferenceError` that says how to install it."""
    return import_optional(
        "nncf",
        "precision int8 needs NNCF to quantize the model once: run `python -m pip install nncf`, "
        "or choose --precision bf16",
    )


def float_operations(encoder: Any) -> list[str]:
    """Names of the convolutions kept in floating point: those reading the input, and the one that
    produces the heads' features (the encoder's second output)."""
    names = []
    for operation in encoder.get_ordered_ops():
        if operation.get_type_name() not in _CONVOLUTIONS:
            continue
        source = operation.input(0).get_source_output().get_node()
        if source.get_type_name() == "Parameter":
            names.append(operation.get_friendly_name())
    node = encoder.outputs[1].get_node()
    while node.get_type_name() not in _CONVOLUTIONS and node.get_input_size() > 0:
        node = node.input(0).get_source_output().get_node()
    if node.get_type_name() in _CONVOLUTIONS:
        names.append(node.get_friendly_name())
    return names


def quantize_encoder(encoder: Any, roi: Sequence[int]) -> Any:
    """``encoder`` (an ``openvino.Model``) with int8 convolutions, calibrated on the synthetic CT.

    Takes about 1.5 minutes for the Swin UNETR on two cores. NNCF's progress bars and log lines are kept
    off the console (the command line's progress output stays readable).
    """
    nncf = require_nncf()
    from .calibration import calibration_windows

    if len(set(int(r) for r in roi)) != 1:
        raise InferenceError(f"int8 calibration needs a cubic window, got {tuple(roi)}")
    windows = calibration_windows(int(roi[0]), CALIBRATION_WINDOWS)
    ignored = nncf.IgnoredScope(names=float_operations(encoder), types=["MatMul"], validate=False)
    nncf_logger = logging.getLogger("nncf")
    level = nncf_logger.level
    nncf_logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return nncf.quantize(
                encoder,
                nncf.Dataset(windows),
                model_type=nncf.ModelType.TRANSFORMER,
                ignored_scope=ignored,
                subset_size=len(windows),
                fast_bias_correction=True,
            )
    finally:
        nncf_logger.setLevel(level)
