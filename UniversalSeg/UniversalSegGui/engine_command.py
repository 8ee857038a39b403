"""Command lines for the engine process (``python -m UniversalSegLib ...``)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from UniversalSegLib.run_choices import SPEED_MODES

from .choices import DEVICE_CHOICES, choice_values

#: The devices the panel offers (the engine knows more: ``UniversalSegLib.run_choices.DEVICES``).
DEVICES: tuple[str, ...] = tuple(choice_values(DEVICE_CHOICES))


@dataclass(frozen=True)
class FeatureSettings:
    """The options of a run that change the image features the engine computes (and keeps for re-queries).

    Attributes:
        model: catalog model name (``swinunetr`` or ``unet``).
        device: ``auto`` (GPU when there is one) or ``cpu``.
        speed: ``faithful`` (official settings: overlap 0.5, fp32), ``balanced`` or ``fast``; passed to the
            engine as ``--speed``, which picks the settings for the device it runs on (docs/speed.md): the
            engine, precision, overlap and windows per pass all follow from it.
        weights: a checkpoint file to use instead of the cached download.
    """

    model: str = "swinunetr"
    device: str = "auto"
    speed: str = "faithful"
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.speed not in SPEED_MODES:
            raise ValueError(f"speed must be one of {SPEED_MODES}, got {self.speed!r}")


@dataclass(frozen=True)
class SegmentOptions(FeatureSettings):
    """What the panel asks the engine for: :class:`FeatureSettings` plus what does not change the features.

    An option added later that changes the image features (window size, overlap, ...) belongs in
    :class:`FeatureSettings`, so that the panel does not promise a re-query the engine cannot answer.

    Attributes:
        classes: class keys to segment.
        accept_license: the user accepted the weights license.
        feature_cache: let the engine reuse the image features of an earlier run of the same volume and keep
            this run's (``False`` passes ``--no-feature-cache``).
    """

    classes: tuple[str, ...] = ()
    accept_license: bool = False
    feature_cache: bool = True

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("Select at least one class to segment.")
        super().__post_init__()

    @property
    def feature_settings(self) -> FeatureSettings:
        """The part of these options that the image features depend on."""
        return FeatureSettings(**{field.name: getattr(self, field.name) for field in fields(FeatureSettings)})


def python_executable() -> str:
    """Slicer's ``PythonSlicer`` launcher when there is one, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def library_root() -> Path:
    """The folder that contains the ``UniversalSegLib`` package (added to the engine's PYTHONPATH)."""
    spec = importlib.util.find_spec("UniversalSegLib")
    if spec is None or spec.origin is None:
        raise ImportError("UniversalSegLib is not importable: the extension is incomplete, reinstall it.")
    return Path(spec.origin).resolve().parent.parent


def engine_environment() -> dict[str, str]:
    """Environment for the engine: PYTHONPATH reaches the bundled library; unbuffered output."""
    paths = [str(library_root())]
    existing = os.environ.get("PYTHONPATH")
    if existing:
        paths.append(existing)
    return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}


def segment_arguments(input_path: str | Path, output_path: str | Path, options: SegmentOptions) -> list[str]:
    """Arguments after the Python executable for one segmentation run."""
    arguments = ["-m", "UniversalSegLib", "segment", str(input_path), "-o", str(output_path)]
    arguments += ["--classes", *options.classes, "--progress", "json", "--overwrite"]
    arguments += ["--model", options.model, "--device", options.device]
    if options.weights:
        arguments += ["--weights", str(options.weights)]
    if options.accept_license:
        arguments.append("--accept-license")
    if not options.feature_cache:
        arguments.append("--no-feature-cache")
    return arguments + ["--speed", options.speed]


def download_arguments(model: str, accept_license: bool) -> list[str]:
    """Arguments that download one model's weights with JSON progress lines."""
    arguments = ["-m", "UniversalSegLib", "weights", "download", model, "--progress", "json"]
    return arguments + (["--accept-license"] if accept_license else [])


def command_line(arguments: Sequence[str]) -> str:
    """A copyable command line (for the log)."""
    import shlex

    return " ".join(shlex.quote(part) for part in [python_executable(), *arguments])
