"""Where each prepared case lives and whether it is still current.

A prepared case ``<cache_dir>/<dataset>/<case>.npz`` has a JSON sidecar, written last, with

* a *settings fingerprint*: input paths, label mapping, classes and spacing; and
* the *state of each input file* when it was read: ``size``, ``mtime_ns`` and the SHA-256 of its bytes.

A case is current when the fingerprint matches and both input files still have the recorded size and
modification time (a ``stat``, so checking 10 000 cases costs nothing). When the size or time differ,
``prepare`` hashes the file: different bytes re-prepare the case (and the log names the file); the same
bytes (a ``touch``, a copy that did not keep times) only refresh the recorded state. ``prepare --verify``
hashes every file, which also catches the one case size+mtime cannot: a same-size rewrite that restored
the old modification time (``touch -r``, ``rsync -t`` of a different file).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from UniversalSegLib.io.atomic import atomic_write_text
from UniversalSegLib.weights.download import sha256_of

from .config import DatasetSpec, TrainingConfig

ROLES = ("image", "label")


@dataclass(frozen=True)
class CaseJob:
    """Everything one worker needs to prepare one case (picklable)."""

    dataset: str
    case_id: str
    image: str
    label: str
    label_map: dict[int, list[int]]
    rl_split: list[tuple[int, int]]
    classes: list[int]
    num_classes: int
    spacing: float
    output: str

    def fingerprint(self) -> str:
        """A hash of the paths and settings (not the file contents: see :func:`case_status`)."""
        data = [self.image, self.label, sorted(self.label_map.items()), self.rl_split, self.classes]
        data += [self.num_classes, self.spacing]
        return hashlib.sha1(json.dumps(data, default=str).encode()).hexdigest()

    @property
    def sidecar(self) -> Path:
        return Path(self.output + ".json")

    @property
    def arrays(self) -> Path:
        return Path(self.output + ".npz")


@dataclass(frozen=True)
class CaseStatus:
    """Whether a case must be prepared (``new``/``stale``), is ``current``, or only needs a ``refresh``."""

    kind: str
    reason: str = ""
    files: dict[str, dict[str, Any]] | None = None  # refresh: the new input-file states


def case_id_for(image: str) -> str:
    """A readable, collision-free id for a case: file stem plus a hash of the full path."""
    name = Path(image).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".h5"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return f"{name}_{hashlib.sha1(image.encode()).hexdigest()[:8]}"


def case_jobs(config: TrainingConfig, spec: DatasetSpec, validation: bool = False) -> list[CaseJob]:
    """The prepare jobs of one dataset's training (or validation) cases."""
    pairs = spec.val_cases if validation else spec.cases
    return [
        CaseJob(
            dataset=spec.key,
            case_id=case_id_for(image),
            image=image,
            label=label,
            label_map=spec.label_map,
            rl_split=list(spec.rl_split),
            classes=spec.classes,
            num_classes=config.num_classes,
            spacing=config.data.spacing,
            output=str(config.cache_dir / spec.key / case_id_for(image)),
        )
        for image, label in pairs
    ]


def file_stat(path: str) -> dict[str, int]:
    """Size and modification time (ns) of a file."""
    stat = os.stat(path)
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def file_state(path: str) -> dict[str, Any]:
    """What the sidecar records about an input file: path, size, mtime_ns and SHA-256."""
    return {"path": path, **file_stat(path), "sha256": sha256_of(Path(path))}


def read_sidecar(job: CaseJob) -> dict[str, Any] | None:
    if not job.sidecar.is_file() or not job.arrays.is_file():
        return None
    try:
        return json.loads(job.sidecar.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def case_status(job: CaseJob, hash_changed: bool = True, verify: bool = False) -> CaseStatus:
    """Compare a prepared case with its current inputs.

    Args:
        job: the case.
        hash_changed: hash a file whose size or mtime changed, to tell an edit from a ``touch``
            (else any such change makes the case stale).
        verify: hash every input file, even when its size and mtime are unchanged.
    """
    sidecar = read_sidecar(job)
    if sidecar is None:
        return CaseStatus("new", "not prepared yet")
    if sidecar.get("fingerprint") != job.fingerprint():
        return CaseStatus("stale", "its paths or settings changed")
    recorded = sidecar.get("inputs")
    if not isinstance(recorded, dict) or set(recorded) != set(ROLES):
        return CaseStatus("stale", "it was prepared without input-file tracking")
    refreshed = dict(recorded)
    for role in ROLES:
        path, before = getattr(job, role), recorded[role]
        try:
            now = file_stat(path)
        except OSError:
            return CaseStatus("stale", f"{role} {path} is missing")
        same_stat = all(now[key] == before.get(key) for key in ("size", "mtime_ns"))
        if same_stat and not verify:
            continue
        if not hash_changed:
            return CaseStatus("stale", f"{role} {path} changed (size or modification time)")
        if now["size"] != before.get("size"):
            return CaseStatus(
                "stale", f"{role} {path} changed (size {before.get('size')} -> {now['size']} bytes)"
            )
        if sha256_of(Path(path)) != before.get("sha256"):
            return CaseStatus("stale", f"{role} {path} changed (content)")
        refreshed[role] = {**before, **now}
    if refreshed != recorded:
        return CaseStatus("refresh", "input files were touched but their content is unchanged", refreshed)
    return CaseStatus("current")


def is_done(job: CaseJob) -> bool:
    """True if the case was prepared with the same settings from input files with unchanged size and mtime."""
    return case_status(job, hash_changed=False).kind == "current"


def refresh_sidecar(job: CaseJob, files: dict[str, dict[str, Any]]) -> None:
    """Record new sizes/mtimes of input files whose content is unchanged."""
    sidecar = read_sidecar(job) or {}
    sidecar["inputs"] = files
    atomic_write_text(job.sidecar, json.dumps(sidecar, indent=1), overwrite=True)
