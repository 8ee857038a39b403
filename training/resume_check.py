"""What a training checkpoint records so that ``--resume`` can refuse to continue the wrong run.

:func:`resume_record` goes into every checkpoint's ``training_state``: the number of processes, the
per-process batch, and the settings that make continuing meaningful (network, preprocessing, datasets
and their labels, optimisation and schedule; never paths such as ``output_dir``), with a fingerprint.
:func:`check_resume` compares it with the current run before any data or network is built:

* a checkpoint saved mid-epoch continues the epoch's data stream at a position counted in per-process
  batches, so it is refused on another number of processes or another ``data.batch_size``;
* a checkpoint saved at the end of an epoch is accepted on any number of processes: the data are
  re-sharded from the next epoch, and a note says so (and how the global batch changes);
* a checkpoint whose settings differ is refused, naming each differing setting, unless the user passes
  ``--resume-allow-config-change``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .config import TrainingConfig
from .errors import ConfigError

RECORD_KEY = "resume_record"
OVERRIDE_FLAG = "--resume-allow-config-change"

# The settings compared on resume, by section; everything else (paths, logging, loader workers, amp,
# deterministic mode) may change between runs.
COMPARED = {
    "model": ("backbone", "per_sample_norm"),
    "data": ("spacing", "a_min", "a_max", "roi_size", "num_samples", "batch_size", "uniform_sample"),
    "train": (
        "epochs",
        "warmup_epochs",
        "optimizer",
        "lr",
        "weight_decay",
        "momentum",
        "steps_per_epoch",
        "accumulate",
        "dice",
        "seed",
        "grad_clip",
    ),
}


class ResumeError(ConfigError):
    """``--resume`` would not continue the run the checkpoint belongs to; the message says what to do."""


def _plain(value: Any) -> Any:
    """``value`` as JSON data (tuples as lists, mapping keys as text), so saved and current compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def resume_settings(config: TrainingConfig) -> dict[str, Any]:
    """The settings that must not change on resume, as ``{dotted name: JSON value}``."""
    settings: dict[str, Any] = {
        f"{section}.{name}": getattr(getattr(config, section), name)
        for section, names in COMPARED.items()
        for name in names
    }
    settings["classes"] = [config.class_table.resolve_key(i) for i in range(1, config.num_classes + 1)]
    settings["datasets"] = [spec.key for spec in config.datasets]
    for spec in config.datasets:
        where = f"datasets.{spec.key}"
        settings[f"{where}.label_map"] = spec.label_map
        settings[f"{where}.classes"] = spec.classes
        settings[f"{where}.rl_split"] = spec.rl_split
        settings[f"{where}.crop"] = vars(spec.crop)
        settings[f"{where}.rand_zoom"] = spec.rand_zoom
        settings[f"{where}.sampling_group"] = spec.sampling_group
        settings[f"{where}.cases"] = len(spec.cases)  # how many: the data stream indexes them
    return _plain(settings)


def fingerprint(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings' canonical JSON text."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def resume_record(config: TrainingConfig, world_size: int) -> dict[str, Any]:
    """What a checkpoint stores for :func:`check_resume` (plain data)."""
    settings = resume_settings(config)
    return {
        "world_size": world_size,
        "batch_size": config.data.batch_size,
        "num_samples": config.data.num_samples,
        "settings": settings,
        "fingerprint": fingerprint(settings),
    }


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name (saved -> current)`` for each setting that differs, in name order."""
    missing = object()
    changes = []
    for name in sorted(set(saved) | set(current)):
        before, after = saved.get(name, missing), current.get(name, missing)
        if before != after:
            shown = ["unset" if v is missing else json.dumps(v) for v in (before, after)]
            changes.append(f"{name} ({_shorten(shown[0])} -> {_shorten(shown[1])})")
    return changes


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_resume(
    payload: dict[str, Any],
    config: TrainingConfig,
    world_size: int,
    allow_config_change: bool = False,
    source: str = "the checkpoint",
) -> list[str]:
    """Check that ``payload`` (a loaded training checkpoint) can continue with ``config`` on ``world_size``
    processes.

    Returns:
        Notes to log (re-sharding, settings changed under the override, an old checkpoint's missing record).

    Raises:
        ResumeError: a mid-epoch checkpoint on another number of processes or batch size, or changed
            settings without ``allow_config_change``; one line saying what to do instead.
    """
    state = payload["training_state"]
    record = state.get(RECORD_KEY) or {}
    saved_world = int(record.get("world_size", state.get("world_size", 1)))
    epoch, position = int(state["epoch"]), int(state.get("epoch_batches", 0))
    notes = []
    saved_batch = record.get("batch_size", config.data.batch_size)
    if position and (saved_world != world_size or saved_batch != config.data.batch_size):
        raise ResumeError(
            f"--resume {source}: saved in the middle of epoch {epoch + 1} (after {position} batches of "
            f"{saved_batch} per process on {saved_world} process(es)); continuing that epoch on "
            f"{world_size} process(es) with batches of {config.data.batch_size} would skip or repeat cases. "
            f"Resume it with {saved_world} process(es) and data.batch_size {saved_batch}, or resume from the "
            "last epoch-end checkpoint (checkpoints/epoch_<n>.pth)."
        )
    if saved_world != world_size:
        per_step = config.data.batch_size * config.data.num_samples * max(config.train.accumulate, 1)
        notes.append(
            f"Resuming an epoch-end checkpoint of {saved_world} process(es) on {world_size}: the training "
            f"cases are re-sharded from epoch {epoch + 1}; crops per optimizer step change from "
            f"{saved_world * per_step} to {world_size * per_step}."
        )
    if not record:
        notes.append(f"{source} predates resume records: its settings cannot be compared with the config's.")
        return notes
    changes = changed_settings(record["settings"], resume_settings(config))
    if changes and not allow_config_change:
        raise ResumeError(
            f"--resume {source}: the config differs from the one it was trained with in "
            f"{'; '.join(changes)}. Resume with the original settings, start a new run from its weights "
            f"(model.init_checkpoint), or pass {OVERRIDE_FLAG} to continue with the new ones."
        )
    if changes:
        notes.append(f"Resuming with changed settings ({OVERRIDE_FLAG}): {'; '.join(changes)}.")
    return notes
