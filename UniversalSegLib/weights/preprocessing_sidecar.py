"""``<name>.preprocessing.json`` beside a file in the released layout, which has no room for metadata.

The released (official) layout holds the state dict only, so a model trained with other preprocessing than
the official one carries it in this sidecar; ``load_model`` reads it when it loads an official-layout file.
The official scripts ignore it: :func:`official_script_arguments` gives what to pass them instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from UniversalSegLib.inference.preprocessing_settings import (
    OFFICIAL,
    PreprocessingSettings,
    PreprocessingSettingsError,
)
from UniversalSegLib.io.atomic import atomic_output, check_output_path

SIDECAR_SUFFIX = ".preprocessing.json"


def sidecar_path(checkpoint: str | os.PathLike[str]) -> Path:
    """``final.pth`` → ``final.preprocessing.json`` (same folder)."""
    path = Path(checkpoint)
    return path.with_name(path.stem + SIDECAR_SUFFIX)


def read_sidecar(checkpoint: str | os.PathLike[str]) -> PreprocessingSettings | None:
    """The settings stored beside ``checkpoint``, or None when there is no sidecar.

    Raises:
        PreprocessingSettingsError: the sidecar is not valid JSON or holds invalid settings (names the file).
    """
    path = sidecar_path(checkpoint)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return PreprocessingSettings.from_metadata(data)
    except (OSError, ValueError) as error:  # JSONDecodeError and PreprocessingSettingsError are ValueErrors
        raise PreprocessingSettingsError(
            f"{path}: {error}; fix or delete this file (it sets the preprocessing of {Path(checkpoint).name})"
        ) from error


def write_sidecar(
    checkpoint: str | os.PathLike[str], settings: PreprocessingSettings, *, overwrite: bool = False
) -> Path | None:
    """Store ``settings`` beside ``checkpoint``; official settings need no sidecar (a stale one is removed).

    Returns:
        The sidecar's path, or None when none was needed.

    Raises:
        OutputExistsError: a sidecar exists and ``overwrite`` is False (a ``FileExistsError``).
    """
    path = check_output_path(sidecar_path(checkpoint), overwrite)
    if settings == OFFICIAL:
        path.unlink(missing_ok=True)
        return None
    with atomic_output(path, overwrite) as temporary:
        Path(temporary).write_text(json.dumps(settings.to_metadata(), indent=2) + "\n", encoding="utf-8")
    return path


def official_script_arguments(settings: PreprocessingSettings) -> str:
    """The official scripts' options for ``settings`` (``--space_x 3 ... --roi_z 64``)."""
    x, y, z = settings.spacing_mm
    size = settings.roi_size
    return (
        f"--space_x {x:g} --space_y {y:g} --space_z {z:g} --a_min {settings.intensity_min:g} "
        f"--a_max {settings.intensity_max:g} --roi_x {size} --roi_y {size} --roi_z {size}"
    )
