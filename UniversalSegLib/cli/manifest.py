"""The resumable manifest of a batch: one JSON line per finished input, one file per rank.

Each rank appends to its own ``universalseg-manifest.rank<R>.jsonl`` in the output folder (no two writers
share a file); every line is written with one ``write`` call and ``fsync``-ed, so a crash loses at most the
line being written, and a torn last line is ignored on reading. A re-run reads the files of all ranks (the
number of ranks may have changed) and skips an input whose latest entry says ``ok`` for the same input
identity (size and modification time), the same result-changing options and an output that still exists.
Only those fields decide; the speed figures (``stage_seconds``, ``windows``, ``windows_per_second``,
``waited_seconds``: :mod:`~UniversalSegLib.cli.batch_figures`) and ``stage`` are for people, and entries
written before they existed are read alike.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("UniversalSegLib.cli")

MANIFEST_PATTERN = "universalseg-manifest.rank*.jsonl"
STATUS_OK = "ok"
STATUS_FAILED = "failed"


def manifest_path(folder: Path, rank: int) -> Path:
    """The manifest file rank ``rank`` writes in ``folder``."""
    return folder / f"universalseg-manifest.rank{rank}.jsonl"


def input_identity(path: Path) -> dict[str, int]:
    """Size and modification time of a file; for a DICOM folder, of the files directly in it.

    Raises:
        OSError: the path cannot be read.
    """
    if not path.is_dir():
        status = path.stat()
        return {"bytes": status.st_size, "mtime_ns": status.st_mtime_ns}
    files = [entry.stat() for entry in path.iterdir() if entry.is_file()]
    return {
        "files": len(files),
        "bytes": sum(status.st_size for status in files),
        "mtime_ns": max((status.st_mtime_ns for status in files), default=0),
    }


def options_digest(options: dict[str, Any]) -> str:
    """A short digest of the options that change results (key order does not matter)."""
    text = json.dumps(options, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class ManifestEntry:
    """What the manifest records about one input.

    Attributes:
        seconds: the CT's own work, its background read and preprocessing included.
        stage: for a failed input, the stage that failed (``read``, ``preprocess``, ``segment``, ``write``).
        stage_seconds: seconds per stage (``read``, ``preprocess``, ``inference``, ``network``,
            ``postprocess``, ``resample``, ``write``; only the stages that ran).
        windows: sliding windows run; ``windows_per_second``: over the ``inference`` seconds.
        waited_seconds: how long the batch waited for this CT's background read and preprocessing.
    """

    input: str
    identity: dict[str, int] | None
    options_digest: str
    output: str
    status: str
    seconds: float
    error: str = ""
    rank: int = 0
    finished: float = field(default_factory=time.time)
    options: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    windows: int = 0
    windows_per_second: float = 0.0
    waited_seconds: float = 0.0


class Manifest:
    """The entries of earlier runs in ``folder`` (all ranks) and the file this rank appends to."""

    def __init__(self, folder: Path, rank: int) -> None:
        self.path = manifest_path(folder, rank)
        self._latest: dict[str, dict[str, Any]] = {}
        for file in sorted(folder.glob(MANIFEST_PATTERN)) if folder.is_dir() else []:
            for entry in _read_lines(file):
                previous = self._latest.get(entry["input"])
                if previous is None or entry.get("finished", 0) >= previous.get("finished", 0):
                    self._latest[entry["input"]] = entry

    def is_done(self, input_path: Path, identity: dict[str, int], digest: str, output: Path) -> bool:
        """Whether the latest entry for ``input_path`` is ``ok`` for this identity, options and output."""
        entry = self._latest.get(str(input_path))
        return (
            entry is not None
            and entry.get("status") == STATUS_OK
            and entry.get("identity") == identity
            and entry.get("options_digest") == digest
            and entry.get("output") == str(output)
            and output.is_file()
        )

    def append(self, entry: ManifestEntry) -> None:
        """Add one line (a single write, then ``fsync``); the folder is created when missing."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry), sort_keys=True, default=str) + "\n"
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(descriptor, line.encode("utf-8"))
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        self._latest[entry.input] = asdict(entry)


def _read_lines(file: Path) -> list[dict[str, Any]]:
    """The valid entries of one manifest file; unreadable files and torn lines are skipped (logged)."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        logger.warning("Cannot read manifest %s (%s); its inputs are done again", file, exc.strerror or exc)
        return []
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            logger.debug("%s line %d is incomplete; ignored", file, number)
            continue
        if isinstance(entry, dict) and isinstance(entry.get("input"), str):
            entries.append(entry)
    return entries
