"""Checks that run before any data is loaded or any network is built, so mistakes fail in seconds.

Each raises :class:`ConfigError` (or a subclass) with one message that says what to fix; the entry
points print it as ``error: ...`` and exit with status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import TrainingConfig
from .datasets import prepared_items
from .errors import ConfigError
from .input_files import check_input_files


def check_prepared(config: TrainingConfig, validation: bool = False) -> None:
    """Every training (and, if asked, validation) case is prepared and current."""
    for spec in config.datasets:
        prepared_items(config, spec)
        if validation:
            prepared_items(config, spec, validation=True)


def check_model_inputs(config: TrainingConfig) -> None:
    """The embeddings file (when it is used) loads and has 512-wide rows."""
    if config.model.embeddings and not config.model.init_checkpoint:
        from .model_setup import load_embedding_file

        load_embedding_file(config.model.embeddings)


def preflight(config: TrainingConfig) -> None:
    """All checks a training run needs before it builds its data loader and model."""
    check_input_files(config)
    check_model_inputs(config)
    check_prepared(config, validation=config.train.val_every > 0)


def load_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint for ``--resume`` and check it is a training checkpoint.

    Raises:
        ConfigError: the file is missing, unreadable, or has no training state (e.g. a released model).
    """
    from .checkpointing import load_training_checkpoint

    if not Path(path).is_file():
        raise ConfigError(f"--resume: {path} not found.")
    return load_training_checkpoint(path)
