"""Check that every file a config names exists and is readable, before anything heavy starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainingConfig

MAX_LISTED = 10  # missing files shown in the error; the rest are counted


def unreadable(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as an input file, or None if it can."""
    path = Path(path)
    if not path.exists():
        return "missing"
    if not path.is_file():
        return "not a file"
    if not os.access(path, os.R_OK):
        return "not readable"
    return None


def input_files(config: TrainingConfig) -> list[tuple[str, str]]:
    """``(what, path)`` of every input file of the config: images, labels and weights files."""
    files = []
    for spec in config.datasets:
        for split, pairs in (("", spec.cases), ("validation ", spec.val_cases)):
            for image, label in pairs:
                files += [
                    (f"dataset {spec.key!r} {split}image", image),
                    (f"dataset {spec.key!r} {split}label", label),
                ]
    for name in ("embeddings", "init_checkpoint", "init_backbone"):
        value = getattr(config.model, name)
        if value:
            files.append((f"model.{name}", value))
    pretrained = config.text_encoder.get("pretrained")
    if isinstance(pretrained, str) and (os.sep in pretrained or Path(pretrained).suffix in (".pt", ".bin")):
        files.append(("text_encoder.pretrained", pretrained))
    return files


def check_input_files(config: TrainingConfig) -> None:
    """Raise one error listing every missing or unreadable input file (the first ten, then a count).

    Raises:
        ConfigError: some input files cannot be read.
    """
    problems = []
    for what, path in input_files(config):
        reason = unreadable(path)
        if reason:
            problems.append(f"  {what}: {path} ({reason})")
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    if len(problems) > MAX_LISTED:
        shown.append(f"  ... and {len(problems) - MAX_LISTED} more")
    raise ConfigError(
        f"{len(problems)} input file(s) of the config cannot be read; fix the paths "
        f"(relative paths are relative to the config file or the dataset's root):\n" + "\n".join(shown)
    )
