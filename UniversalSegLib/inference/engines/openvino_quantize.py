"""int8 post-training quantization of the converted encoder with NNCF (``--speed fast`` on CPUs).

NNCF (OpenVINO's quantization library) inserts int8 quantizers after a calibration pass over a few
windows of the synthetic abdomen CT (:mod:`~UniversalSegLib.inference.engines.calibration`). Before that, each
convolution that reads a decoder's concatenation is split into one convolution per concatenated input
(:func:`split_concatenated_convolutions`), so the upsampled features and the skip connection get an int8
scale each. What stays in floating point was chosen by measuring the flipped voxels of each variant on the
fitted stand-in model (docs/speed.md):

- the transformer's matrix products (quantizing them too was no more accurate and slower: 1.8 s per window
  against 1.5 s);
- the convolutions that read the CT itself (8-bit intensity steps of 1.7 HU cost the most fidelity);
- the pre-head convolution, whose output the per-class heads read directly.

The other convolutions, which carry most of the work at full resolution, run in int8: on the fitted stand-in
model 4.8-5.9x faster than faithful end to end, with per-class Dice 0.976-0.995 against faithful.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Sequence
from typing import Any

from ..errors import InferenceError, import_optional

#: Part of the stored folder's name: a new scheme never reads an int8 model made by an older one.
QUANTIZATION_VERSION = "2"
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


def split_concatenated_convolutions(encoder: Any) -> int:
    """Rewrite, in place, each convolution that reads a channel concatenation as one convolution per
    concatenated input, summed: ``W * cat(a, b) = W_a * a + W_b * b``.

    The same function, and in floating point the same numbers up to rounding; but each input then gets its
    own int8 scale. Quantized as one tensor, a U-Net decoder's concatenation of the upsampled features and
    the skip connection shares one scale across two different ranges: on the fitted stand-in the split took
    the flipped voxels from 0.064% to 0.051% and the left kidney's Dice from 0.909 to 0.989 at the same
    speed (docs/speed.md). Returns how many convolutions were split.
    """
    from openvino import opset13 as ops

    split = 0
    for operation in list(encoder.get_ordered_ops()):
        if operation.get_type_name() != "Convolution":
            continue
        concat = operation.input(0).get_source_output().get_node()
        weights = operation.input(1).get_source_output().get_node()
        if concat.get_type_name() != "Concat" or weights.get_type_name() != "Constant":
            continue
        rank = len(operation.get_output_partial_shape(0))
        if concat.get_attributes()["axis"] not in (1, 1 - rank) or concat.get_input_size() < 2:
            continue
        parts = [concat.input(i).get_partial_shape()[1] for i in range(concat.get_input_size())]
        if not all(part.is_static for part in parts):
            continue
        attributes = operation.get_attributes()
        kernel = weights.get_data()
        name = operation.get_friendly_name()
        total, start = None, 0
        for index, part in enumerate(parts):
            stop = start + part.get_length()
            piece = ops.constant(kernel[:, start:stop].copy(), name=f"{name}/weights{index}")
            start = stop
            term = ops.convolution(
                concat.input(index).get_source_output(),
                piece,
                attributes["strides"],
                attributes["pads_begin"],
                attributes["pads_end"],
                attributes["dilations"],
                attributes["auto_pad"],
                name=f"{name}/part{index}",
            )
            total = term if total is None else ops.add(total, term, name=f"{name}/sum{index}")
        operation.output(0).replace(total.output(0))
        split += 1
    if split:
        encoder.validate_nodes_and_infer_types()
    return split


def quantize_encoder(encoder: Any, roi: Sequence[int]) -> Any:
    """``encoder`` (an ``openvino.Model``) with int8 convolutions, calibrated on the synthetic CT.

    ``encoder`` itself is changed first: its concatenation readers are split in place
    (:func:`split_concatenated_convolutions`), so pass a model read for this purpose. Takes about 1.5
    minutes for the Swin UNETR on two cores. NNCF's progress bars and log lines are kept off the console
    (the command line's progress output stays readable).
    """
    nncf = require_nncf()
    from .calibration import calibration_windows

    if len(set(int(r) for r in roi)) != 1:
        raise InferenceError(f"int8 calibration needs a cubic window, got {tuple(roi)}")
    windows = calibration_windows(int(roi[0]), CALIBRATION_WINDOWS)
    split_concatenated_convolutions(encoder)
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
