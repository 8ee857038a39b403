"""The converted encoder's cache: stored once per (weights, window size, OpenVINO version), compiled per run.

Converting takes about a minute (in a child process, so that a cancel stops it at once:
:mod:`.openvino_prepare`), so the converted model is stored in ``<home>/openvino/<key>/encoder.xml``
(``home`` = ``$UNIVERSALSEG_HOME`` or the per-user data folder, beside the weights), where ``key`` hashes the
encoder weights, the window size, the OpenVINO version and this file's format version; later runs only
load it. OpenVINO's own cache keeps the compiled form in ``<key>/compiled/<precision>-threads<n>``, so a
later run starts in about 0.5 s instead of compiling for about 9 s. Compiled models are also kept in memory
for the life of the process (the Slicer session).

``precision="int8"`` (the ``fast`` speed mode on CPUs) quantizes the stored model's convolutions once with
NNCF (:mod:`.openvino_quantize`, about 1.5 minutes) and keeps the result in ``<key>/int8-v<n>/``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ...cache_paths import openvino_folder
from ..device import autocast_precision
from ..errors import InferenceError
from .openvino_convert import ENCODER_FILE, require_openvino
from .openvino_prepare import prepare_encoder_files
from .openvino_quantize import INT8_FOLDER

logger = logging.getLogger(__name__)

FORMAT_VERSION = "1"
COMPILED_FOLDER = "compiled"
_OV_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "bf16"}
_COMPILED: dict[tuple[str, str, int | None], Any] = {}
_COMPILED_LIMIT = 4
#: model -> {key header: (weights signature, key)}; entries go with their model.
_KEYS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, tuple[tuple, str]]] = weakref.WeakKeyDictionary()
# Batch-norm running statistics: the U-Net always normalises with batch statistics, so they never matter.
_UNUSED_STATE = frozenset({"running_mean", "running_var", "num_batches_tracked"})

StatusCallback = Callable[[str], None]


def default_cache_dir() -> Path:
    """``<home>/openvino``: beside the weights, so that one "Clear cache" removes both."""
    return openvino_folder()


def _stored_folder(
    model: torch.nn.Module, roi: Sequence[int], cache_dir: str | os.PathLike[str] | None, ov: Any
) -> Path:
    """``<cache_dir>/<key>``: where the converted encoder of ``model`` for ``roi`` windows is stored."""
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / encoder_key(model, roi, ov.__version__)


def _encoder_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [model.backbone, model.GAP, model.precls_conv]


def _weights_signature(model: torch.nn.Module) -> tuple[tuple[int, int], ...]:
    """Identity and in-place version counter of every encoder tensor: changes whenever a weight does."""
    return tuple(
        (id(tensor), tensor._version)
        for module in _encoder_modules(model)
        for tensor in module.state_dict(keep_vars=True).values()
    )


def encoder_key(model: torch.nn.Module, roi: Sequence[int], openvino_version: str) -> str:
    """Hash of everything the converted encoder depends on: weights, backbone, window size, versions.

    The U-Net's ``per_sample_norm`` is left out: the encoder is traced on one window, where it changes
    nothing, so runs with several windows per pass reuse the same converted model. Hashing the weights
    takes 0.2-0.6 s, so the key is remembered per model for as long as no weight tensor is replaced or
    changed in place.
    """
    header = f"{FORMAT_VERSION}|{model.backbone_name}|{tuple(int(r) for r in roi)}|{openvino_version}"
    signature = _weights_signature(model)
    remembered = _KEYS.get(model, {}).get(header)
    if remembered is not None and remembered[0] == signature:
        return remembered[1]
    digest = hashlib.blake2b(digest_size=16)
    digest.update(header.encode())
    for module in _encoder_modules(model):
        for name, tensor in module.state_dict().items():
            if name.rsplit(".", 1)[-1] in _UNUSED_STATE:
                continue
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy())  # the buffer itself, no copy
    key = f"{model.backbone_name}-{'x'.join(str(int(r)) for r in roi)}-{digest.hexdigest()}"
    _KEYS.setdefault(model, {})[header] = (signature, key)
    return key


def stored_encoder_path(
    model: torch.nn.Module,
    roi: Sequence[int],
    cache_dir: str | os.PathLike[str] | None = None,
    precision: str = "fp32",
) -> Path | None:
    """The stored converted encoder of ``model`` for ``roi`` windows, or ``None`` (not prepared yet).

    ``precision="int8"`` asks for the quantized encoder; every other precision compiles the float one.
    """
    path = _encoder_file(_stored_folder(model, roi, cache_dir, require_openvino()), precision)
    return path if path.is_file() else None


def _encoder_file(stored: Path, precision: str) -> Path:
    """The file in a model's ``stored`` folder that ``precision`` compiles: int8 model or float model."""
    if precision != "int8":
        return stored / ENCODER_FILE
    return stored / INT8_FOLDER / ENCODER_FILE


def compiled_encoder(
    model: torch.nn.Module,
    roi: Sequence[int],
    precision: str = "fp32",
    threads: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    status: StatusCallback | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """The OpenVINO-compiled encoder of ``model`` for ``roi`` windows (converted once, then cached).

    Args:
        model: a :class:`~UniversalSegLib.model.UniversalModel` (anything with ``image_features``).
        roi: window size (3 ints).
        precision: ``fp32`` (OpenVINO ``f32``), ``bf16`` (pays only on CPUs with native bf16), ``fp16``
            (run as ``bf16``: CPUs have no fast fp16 convolutions) or ``int8`` (convolutions quantized once
            with NNCF, :mod:`.openvino_quantize`; stored next to the float model).
        threads: CPU threads (``None``: OpenVINO's default, all cores).
        cache_dir: where converted encoders are stored (default :func:`default_cache_dir`).
        status: receives a one-line message before a long conversion.
        cancel: set it to stop a conversion or quantization within a second
            (:class:`~UniversalSegLib.inference.errors.SegmentationCancelled`; nothing is stored).
    """
    ov = require_openvino()
    if not hasattr(model, "image_features"):
        raise InferenceError(
            "engine 'openvino' needs a UniversalModel (a model with image_features/class_logits); "
            "use --engine torch for other predictors"
        )
    if precision not in (*_OV_PRECISION, "int8"):
        raise InferenceError(f"precision must be one of {(*_OV_PRECISION, 'int8')}, got {precision!r}")
    roi = [int(r) for r in roi]
    stored = _stored_folder(model, roi, cache_dir, ov)
    memo_key = (stored.name, precision, threads)
    if memo_key in _COMPILED:
        return _COMPILED[memo_key]
    hint = _compile_precision(precision)
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    source = _prepared_encoder(model, roi, stored, precision, status, cancel)
    core = ov.Core()
    if source.is_relative_to(stored):
        # OpenVINO keeps the compiled form next to it: 0.5 s to load instead of about 9 s to compile. One
        # folder per precision and thread count: OpenVINO 2026.4 gave a bf16 compilation the blob of an
        # earlier f32 one from the same folder, and wrong numbers with it.
        setting = f"{'int8-' if precision == 'int8' else ''}{hint}-threads{threads or 'default'}"
        config["CACHE_DIR"] = str(stored / COMPILED_FOLDER / setting)
        compiled = core.compile_model(str(source), "CPU", config)
    else:
        compiled = core.compile_model(str(source), "CPU", config)  # a temporary copy: no compiled cache
    if len(_COMPILED) >= _COMPILED_LIMIT:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[memo_key] = compiled
    return compiled


def _compile_precision(precision: str) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT``: int8 models compute their float parts as the run's PyTorch
    part does (:func:`~UniversalSegLib.inference.device.autocast_precision`: bf16 where the CPU has native
    bf16, else f32)."""
    return _OV_PRECISION[autocast_precision(precision, torch.device("cpu"))]


def _report(message: str, status: StatusCallback | None) -> None:
    """Tell the user once: through the caller's status callback (progress), or else the log."""
    if status is None:
        logger.info(message)
    else:
        status(message)


def _prepared_encoder(
    model: torch.nn.Module,
    roi: Sequence[int],
    stored: Path,
    precision: str,
    status: StatusCallback | None,
    cancel: threading.Event | None,
) -> Path:
    """The stored encoder file for ``precision``, converted (and for int8 quantized) on first use in a
    child process that ``cancel`` stops at once; a temporary copy when the cache cannot be written (only
    the next run pays again)."""
    target = _encoder_file(stored, precision)
    if target.is_file():
        return target
    if not (stored / ENCODER_FILE).is_file():
        _report("converting the model for the OpenVINO CPU engine (once per model, about a minute)", status)
    int8_folder = target.parent.name if precision == "int8" else None
    return prepare_encoder_files(model, roi, stored, int8_folder, cancel, status) / ENCODER_FILE
