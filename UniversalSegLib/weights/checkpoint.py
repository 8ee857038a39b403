"""Read and write model checkpoints: the released (official) layouts and UniversalSeg's own format.

Our format is a ``torch.save`` dict::

    {"format": "universalseg", "format_version": 1, "state_dict": {our keys: tensors},
     "metadata": {"backbone", "encoding", "num_classes", "class_names", "prompt_template",
                  "embedding_source", "version", "training_config" (optional),
                  "preprocessing" (optional: spacing, orientation, intensity window, window size), ...}}

Official files are ``{"net": {"module.<key>": tensor}, ...}`` (optionally with optimizer/scheduler/epoch),
a bare state dict, or keys without ``module.``; see :mod:`UniversalSegLib.weights.official_layout`. Their
preprocessing is the official one unless a ``<name>.preprocessing.json`` sidecar lies beside them
(:mod:`UniversalSegLib.weights.preprocessing_sidecar`).
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from UniversalSegLib.inference.preprocessing_settings import (
    PreprocessingSettings,
    PreprocessingSettingsError,
    settings_from_training_config,
)
from UniversalSegLib.io.atomic import atomic_output, check_output_path
from UniversalSegLib.model import OFFICIAL_PROMPT_TEMPLATE, UniversalModel, default_class_names
from UniversalSegLib.model.universal_model import BACKBONES
from UniversalSegLib.weights.official_layout import (
    detect_backbone,
    from_official_state_dict,
    to_official_state_dict,
)
from UniversalSegLib.weights.preprocessing_sidecar import read_sidecar, sidecar_path, write_sidecar

FORMAT_NAME = "universalseg"
FORMAT_VERSION = 1
STATE_DICT_CONTAINER_KEYS: tuple[str, ...] = ("net", "state_dict", "model")
MAX_LISTED_KEYS = 8
#: numpy globals an official checkpoint may contain (e.g. a numpy scalar epoch); safe to unpickle.
_NUMPY_SAFE_GLOBAL_PREFIXES = ("numpy.", "numpy._core.", "numpy.core.")
_NUMPY_SAFE_GLOBAL_NAMES = ("scalar", "dtype", "_reconstruct", "ndarray")


class CheckpointError(ValueError):
    """A checkpoint cannot be read or does not fit the model; the message names the file and the problem."""


@dataclass
class LoadedCheckpoint:
    """A checkpoint read from disk: our-key state dict plus what is known about it."""

    path: Path
    state_dict: dict[str, Tensor]
    source_format: str  # "official" or "universalseg"
    backbone: str
    encoding: str
    num_classes: int
    metadata: dict[str, Any] = field(default_factory=dict)


def _key_list(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    return shown + (f", … and {len(keys) - MAX_LISTED_KEYS} more" if len(keys) > MAX_LISTED_KEYS else "")


def _is_numpy_global(name: str) -> bool:
    return name.startswith(_NUMPY_SAFE_GLOBAL_PREFIXES) and (
        name.rsplit(".", 1)[-1] in _NUMPY_SAFE_GLOBAL_NAMES or name.startswith("numpy.dtypes.")
    )


def _numpy_safe_globals() -> list[Any]:
    """numpy scalar/array reconstruction helpers and dtype classes (they cannot run arbitrary code)."""
    import numpy

    multiarray = getattr(numpy, "_core", None) or numpy.core
    dtype_classes = [
        value for value in vars(getattr(numpy, "dtypes", object)).values() if isinstance(value, type)
    ]
    return [
        multiarray.multiarray.scalar,
        multiarray.multiarray._reconstruct,
        numpy.ndarray,
        numpy.dtype,
        *dtype_classes,
    ]


def _torch_load(path: Path) -> Any:
    """``torch.load`` with ``weights_only=True``; numpy scalars/arrays are allowed, other pickles refused."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        try:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - not a zip checkpoint: report the original error
            raise error from None
        if not unsafe:
            raise
        if not all(_is_numpy_global(name) for name in unsafe):
            raise CheckpointError(
                f"{path}: the checkpoint contains Python objects that cannot be loaded safely "
                f"({', '.join(unsafe)}). Expected tensors in plain dicts; re-save the state dict only "
                "(torch.save({'net': model.state_dict()}, path))."
            ) from error
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)


def _read_file(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: is not a file; expected a .pth checkpoint written by torch.save")
    try:
        return _torch_load(path)
    except CheckpointError:
        raise
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged files
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}). "
            "Expected a file written by torch.save; it may be truncated or corrupt: download it again."
        ) from error


def _tensor_state_dict(mapping: Mapping[Any, Any], path: Path) -> dict[str, Tensor]:
    state = {str(key): value for key, value in mapping.items() if isinstance(value, Tensor)}
    if not state:
        raise CheckpointError(f"{path}: found no tensors; expected a model state dict")
    return state


def _extract_official(raw: Any, path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict of an official/bare checkpoint and its extra top-level entries (epoch, ...)."""
    if not isinstance(raw, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict (a state dict, or one under 'net'), got {type(raw).__name__}"
        )
    for container in STATE_DICT_CONTAINER_KEYS:
        if isinstance(raw.get(container), Mapping):
            extras = {
                key: value for key, value in raw.items() if key == "epoch" and isinstance(value, int | float)
            }
            return _tensor_state_dict(raw[container], path), extras
    if any(isinstance(value, Tensor) for value in raw.values()):
        return _tensor_state_dict(raw, path), {}
    raise CheckpointError(
        f"{path}: no state dict found; expected one of the keys {list(STATE_DICT_CONTAINER_KEYS)} or a bare "
        f"state dict, found top-level keys {_key_list([str(key) for key in raw])}"
    )


def _infer_encoding(state_dict: Mapping[str, Tensor], path: Path) -> tuple[str, int]:
    if "organ_embedding.weight" in state_dict:
        return "rand_embedding", int(state_dict["organ_embedding.weight"].shape[0])
    embedding = state_dict.get("organ_embedding")
    if embedding is None or embedding.dim() != 2:
        raise CheckpointError(
            f"{path}: missing the class embedding; expected 'organ_embedding' [N, 512] "
            "(or 'organ_embedding.weight' [N, 256])"
        )
    return "word_embedding", int(embedding.shape[0])


def _training_data(metadata: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The training config summary in ``metadata`` when it has data settings, else None."""
    config = metadata.get("training_config")
    return config if isinstance(config, Mapping) and isinstance(config.get("data"), Mapping) else None


def _with_preprocessing(metadata: dict[str, Any], path: Path, source_format: str) -> dict[str, Any]:
    """``metadata`` with a validated ``preprocessing`` entry where the file says how the model was trained.

    Our format: its ``preprocessing`` entry, else its training config's data settings (checkpoints written
    before the entry existed). Official layout: a ``<name>.preprocessing.json`` sidecar. Else no entry
    (the official settings apply).
    """
    try:
        if source_format == FORMAT_NAME:
            if metadata.get("preprocessing") is not None:
                settings = PreprocessingSettings.from_metadata(metadata["preprocessing"])
            elif (config := _training_data(metadata)) is not None:
                settings = settings_from_training_config(config)
            else:
                return metadata
        else:
            settings = read_sidecar(path)
            if settings is None:
                return metadata
            metadata["preprocessing_file"] = sidecar_path(path).name
    except PreprocessingSettingsError as error:
        where = "its metadata" if source_format == FORMAT_NAME else "its sidecar"
        raise CheckpointError(
            f"{path}: invalid preprocessing settings in {where}: {error}. Fix them, or export the training "
            "checkpoint again (python -m universalseg_training.export)"
        ) from error
    metadata["preprocessing"] = settings.to_metadata()
    return metadata


def read_checkpoint(path: str | os.PathLike[str], backbone: str | None = None) -> LoadedCheckpoint:
    """Read a checkpoint file of any supported layout into our key names (no model is built).

    Raises:
        CheckpointError: unreadable file, no state dict, unknown or mismatching backbone.
    """
    path = Path(path)
    raw = _read_file(path)
    if isinstance(raw, Mapping) and raw.get("format") == FORMAT_NAME:
        version = raw.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{path}: UniversalSeg checkpoint format_version {version!r} is not supported "
                f"(this version reads up to {FORMAT_VERSION}); update UniversalSeg"
            )
        if not isinstance(raw.get("state_dict"), Mapping):
            raise CheckpointError(f"{path}: UniversalSeg checkpoint without a 'state_dict' dict")
        state_dict = _tensor_state_dict(raw["state_dict"], path)
        metadata = dict(raw.get("metadata") or {})
        source_format = FORMAT_NAME
    else:
        official_state, metadata = _extract_official(raw, path)
        state_dict = from_official_state_dict(official_state)
        source_format = "official"
    metadata = _with_preprocessing(metadata, path, source_format)
    detected = metadata.get("backbone") or detect_backbone(list(state_dict))
    if detected is None and backbone is None:
        raise CheckpointError(
            f"{path}: cannot tell the backbone from the keys (expected 'swinViT.*' for swinunetr or "
            f"'backbone.down_tr64.*' for unet); found keys {_key_list(list(state_dict))}"
        )
    if backbone is not None and detected is not None and backbone != detected:
        raise CheckpointError(f"{path}: holds a {detected!r} model, but backbone={backbone!r} was requested")
    name = backbone or detected
    if name not in BACKBONES:
        raise CheckpointError(
            f"{path}: backbone {name!r} is not supported; UniversalSeg builds {', '.join(BACKBONES)}"
        )
    encoding, num_classes = _infer_encoding(state_dict, path)
    return LoadedCheckpoint(path, state_dict, source_format, name, encoding, num_classes, metadata)


def _mismatch_report(model: UniversalModel, state_dict: Mapping[str, Tensor]) -> str | None:
    expected = model.state_dict()
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key} (file {tuple(state_dict[key].shape)}, model {tuple(value.shape)})"
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    problems = [
        f"{label} ({len(keys)}): {_key_list(keys)}"
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("wrong shapes", mismatched),
        )
        if keys
    ]
    return "; ".join(problems) or None


def _class_names(loaded: LoadedCheckpoint) -> list[str]:
    names = loaded.metadata.get("class_names")
    if isinstance(names, list | tuple) and len(names) == loaded.num_classes:
        return [str(name) for name in names]
    return default_class_names(loaded.num_classes)


def build_model(loaded: LoadedCheckpoint, device: str | torch.device = "cpu") -> UniversalModel:
    """Build a :class:`UniversalModel` from a read checkpoint (strict key/shape check), in eval mode."""
    model = UniversalModel(loaded.backbone, num_classes=loaded.num_classes, encoding=loaded.encoding)
    problem = _mismatch_report(model, loaded.state_dict)
    if problem:
        raise CheckpointError(
            f"{loaded.path}: does not match the {loaded.backbone} model "
            f"({loaded.num_classes} classes, {loaded.encoding}): {problem}"
        )
    model.load_state_dict(loaded.state_dict, strict=True)
    model.class_names = _class_names(loaded)
    model.metadata = {
        "prompt_template": OFFICIAL_PROMPT_TEMPLATE,
        "embedding_source": "checkpoint",
        **loaded.metadata,
        "backbone": loaded.backbone,
        "encoding": loaded.encoding,
        "num_classes": loaded.num_classes,
        "class_names": list(model.class_names),
        "source_format": loaded.source_format,
        "path": str(loaded.path),
    }
    return model.to(device).eval()


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", backbone: str | None = None
) -> UniversalModel:
    """Load a released or UniversalSeg checkpoint into a :class:`UniversalModel` on ``device`` (eval mode).

    Args:
        path: the ``.pth`` file.
        device: where to put the model.
        backbone: ``"swinunetr"`` or ``"unet"``; detected from the keys when None.

    Raises:
        CheckpointError: the file is unreadable or does not fit the model (the message lists the keys).
    """
    return build_model(read_checkpoint(path, backbone=backbone), device)


def _cpu_state_dict(model: UniversalModel) -> dict[str, Tensor]:
    return {key: value.detach().to("cpu").clone() for key, value in model.state_dict().items()}


def save_payload(
    payload: Mapping[str, Any], path: str | os.PathLike[str], *, overwrite: bool = False
) -> Path:
    """``torch.save`` ``payload`` to ``path`` atomically; replace an existing file only if ``overwrite``."""
    with atomic_output(path, overwrite) as temporary:
        torch.save(dict(payload), temporary)
    return Path(path)


def _stored_preprocessing(metadata: Mapping[str, Any], inherited: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a new checkpoint stores as ``preprocessing``: the given settings, else those of the given
    training config, else the model's own; validated (a :class:`PreprocessingSettingsError` if not)."""
    value = metadata.get("preprocessing")
    if value is None and (config := _training_data(metadata)) is not None:
        value = settings_from_training_config(config)
    if value is None:
        value = inherited.get("preprocessing")
    if value is None:
        return None
    if not isinstance(value, PreprocessingSettings):
        value = PreprocessingSettings.from_metadata(value)
    return value.to_metadata()


def checkpoint_payload(model: UniversalModel, **metadata: Any) -> dict[str, Any]:
    """``model`` as a dict in UniversalSeg's checkpoint format (what :func:`save_checkpoint` writes).

    Metadata defaults come from the model (backbone, encoding, num_classes, class_names and its
    ``metadata`` dict); keyword arguments (e.g. ``prompt_template``, ``embedding_source``,
    ``training_config``) override them. Values must be plain Python data (str, numbers, lists, dicts).
    ``preprocessing`` (a :class:`PreprocessingSettings` or its metadata dict) defaults to the settings of a
    given ``training_config`` (its ``data`` section), else to the model's own.
    """
    from UniversalSegLib import __version__

    state_dict = _cpu_state_dict(model)
    embedding = state_dict.get("organ_embedding", state_dict.get("organ_embedding.weight"))
    num_classes = int(embedding.shape[0]) if embedding is not None else model.num_classes
    derived = ("path", "source_format", "class_names", "num_classes", "backbone", "encoding", "version")
    derived += ("preprocessing", "preprocessing_file")
    inherited = {key: value for key, value in model.metadata.items() if key not in derived}
    info: dict[str, Any] = {
        "prompt_template": OFFICIAL_PROMPT_TEMPLATE,
        "embedding_source": "checkpoint",
        **inherited,
        "class_names": list(model.class_names),
        **metadata,
        "backbone": model.backbone_name,
        "encoding": model.encoding,
        "num_classes": num_classes,
        "version": __version__,
    }
    info.pop("preprocessing", None)
    preprocessing = _stored_preprocessing(metadata, model.metadata)
    if preprocessing is not None:
        info["preprocessing"] = preprocessing
    if len(info["class_names"]) != num_classes:
        raise ValueError(
            f"class_names has {len(info['class_names'])} names but the model has {num_classes} classes"
        )
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "state_dict": state_dict,
        "metadata": info,
    }


def save_checkpoint(
    model: UniversalModel, path: str | os.PathLike[str], *, overwrite: bool = False, **metadata: Any
) -> Path:
    """Write ``model`` in UniversalSeg's format, atomically (metadata as in :func:`checkpoint_payload`)."""
    return save_payload(checkpoint_payload(model, **metadata), path, overwrite=overwrite)


def export_official(model: UniversalModel, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``model`` in the released layout (``{'net': {'module.…': tensor}}``), atomically.

    The layout has no room for metadata: a model whose preprocessing is not the official one (its
    ``metadata["preprocessing"]``) gets a ``<name>.preprocessing.json`` sidecar, which ``load_model`` reads.
    """
    stored = model.metadata.get("preprocessing")
    settings = PreprocessingSettings.from_metadata(stored) if stored is not None else PreprocessingSettings()
    check_output_path(path, overwrite)
    check_output_path(sidecar_path(path), overwrite)  # a stale sidecar would apply to the new file
    payload = {"net": to_official_state_dict(_cpu_state_dict(model), model.backbone_name)}
    written = save_payload(payload, path, overwrite=overwrite)
    write_sidecar(path, settings, overwrite=overwrite)
    return written
