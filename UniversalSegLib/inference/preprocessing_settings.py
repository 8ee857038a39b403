"""The preprocessing a model was trained with: voxel spacing, orientation, intensity window, window size.

Checkpoints store it under ``metadata["preprocessing"]`` (:meth:`PreprocessingSettings.to_metadata`);
:data:`OFFICIAL` holds the released models' values (MODEL_SPEC §3). Standard library only, so the
checkpoint reader and the CLI can use it without importing MONAI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Axis-code pairs (low end, high end) per axis family; an orientation takes one letter of each.
_AXIS_FAMILIES = (("L", "R"), ("P", "A"), ("I", "S"))
METADATA_KEYS: tuple[str, ...] = ("spacing_mm", "orientation", "intensity_min", "intensity_max", "roi_size")


class PreprocessingSettingsError(ValueError):
    """A preprocessing value is missing, unknown or out of range (the message names it)."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PreprocessingSettingsError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _spacing(value: Any) -> tuple[float, float, float]:
    values = [value] * 3 if isinstance(value, int | float) and not isinstance(value, bool) else value
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) != 3:
        raise PreprocessingSettingsError(f"spacing_mm must be one number or three (x, y, z), got {value!r}")
    spacing = tuple(_number("spacing_mm", item) for item in values)
    if not all(0.0 < item <= 100.0 for item in spacing):
        raise PreprocessingSettingsError(f"spacing_mm must be in (0, 100] mm, got {value!r}")
    return spacing


def _orientation(value: Any) -> str:
    code = value.upper() if isinstance(value, str) else ""
    families = [next((i for i, pair in enumerate(_AXIS_FAMILIES) if c in pair), -1) for c in code]
    if sorted(families) != [0, 1, 2]:
        raise PreprocessingSettingsError(
            f"orientation must be three axis codes, one of L/R, P/A and I/S each (e.g. 'RAS'), got {value!r}"
        )
    return code


def _mm(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class PreprocessingSettings:
    """How a CT is brought into a model's space before the sliding window.

    Attributes:
        spacing_mm: voxel size in mm per axis (x, y, z) after resampling; one number means isotropic.
        orientation: axis codes of the resampled grid (nibabel convention: ``"RAS"``).
        intensity_min: HU mapped to 0 (lower end of the clipped intensity window).
        intensity_max: HU mapped to 1.
        roi_size: sliding-window side in voxels.

    Raises:
        PreprocessingSettingsError: a value out of range (checked on construction).
    """

    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5)
    orientation: str = "RAS"
    intensity_min: float = -175.0
    intensity_max: float = 250.0
    roi_size: int = 96

    def __post_init__(self) -> None:
        object.__setattr__(self, "spacing_mm", _spacing(self.spacing_mm))
        object.__setattr__(self, "orientation", _orientation(self.orientation))
        low = _number("intensity_min", self.intensity_min)
        high = _number("intensity_max", self.intensity_max)
        if low >= high:
            raise PreprocessingSettingsError(
                f"intensity_min ({low:g}) must be below intensity_max ({high:g})"
            )
        object.__setattr__(self, "intensity_min", low)
        object.__setattr__(self, "intensity_max", high)
        roi = self.roi_size
        if isinstance(roi, bool) or not isinstance(roi, int) or not 1 <= roi <= 1024:
            raise PreprocessingSettingsError(f"roi_size must be an integer in 1..1024, got {roi!r}")

    def spacing_text(self) -> str:
        """``1.5 mm``, or ``0.8×0.8×3 mm`` when anisotropic."""
        x, y, z = self.spacing_mm
        return (_mm(x) if x == y == z else "×".join(_mm(value) for value in (x, y, z))) + " mm"

    def intensity_text(self) -> str:
        """``-175..250 HU``."""
        return f"{_mm(self.intensity_min)}..{_mm(self.intensity_max)} HU"

    def describe(self) -> str:
        """One line, e.g. ``1.5 mm RAS, intensity -175..250 HU, 96³ windows``."""
        return (
            f"{self.spacing_text()} {self.orientation}, intensity {self.intensity_text()}, "
            f"{self.roi_size}³ windows"
        )

    def to_metadata(self) -> dict[str, Any]:
        """Plain data for a checkpoint's metadata (read back by :meth:`from_metadata`)."""
        return {
            "spacing_mm": list(self.spacing_mm),
            "orientation": self.orientation,
            "intensity_min": self.intensity_min,
            "intensity_max": self.intensity_max,
            "roi_size": self.roi_size,
        }

    @classmethod
    def from_metadata(cls, data: Any) -> PreprocessingSettings:
        """Settings from :meth:`to_metadata`'s dict; every key is required and no other is accepted.

        Raises:
            PreprocessingSettingsError: not a dict, a key missing or unknown, or a value out of range.
        """
        if not isinstance(data, Mapping):
            raise PreprocessingSettingsError(f"expected a dict of {', '.join(METADATA_KEYS)}, got {data!r}")
        missing = [key for key in METADATA_KEYS if key not in data]
        unknown = sorted(str(key) for key in data if key not in METADATA_KEYS)
        if missing or unknown:
            parts = [f"missing {', '.join(missing)}"] if missing else []
            if unknown:
                parts.append(f"unknown {', '.join(unknown)} (written by a newer UniversalSeg? update it)")
            raise PreprocessingSettingsError(
                f"{'; '.join(parts)}; expected exactly {', '.join(METADATA_KEYS)}"
            )
        return cls(**{key: data[key] for key in METADATA_KEYS})


OFFICIAL = PreprocessingSettings()
"""The released models' preprocessing: 1.5 mm RAS, intensity −175..250 HU, 96³ windows."""


def settings_from_training_config(config: Mapping[str, Any]) -> PreprocessingSettings:
    """The preprocessing of a training config summary (``training_config`` in a checkpoint).

    Training resamples to ``data.spacing`` in RAS and scales ``data.a_min..a_max``; a key the summary lacks
    takes the training default, which is the official value.

    Raises:
        PreprocessingSettingsError: ``data`` is not a dict, or a value is out of range.
    """
    data = config.get("data", {}) if isinstance(config, Mapping) else None
    if not isinstance(data, Mapping):
        raise PreprocessingSettingsError(f"training_config['data'] must be a dict, got {data!r}")
    return PreprocessingSettings(
        spacing_mm=data.get("spacing", OFFICIAL.spacing_mm),
        orientation="RAS",
        intensity_min=data.get("a_min", OFFICIAL.intensity_min),
        intensity_max=data.get("a_max", OFFICIAL.intensity_max),
        roi_size=data.get("roi_size", OFFICIAL.roi_size),
    )


def preprocessing_settings(model: object) -> PreprocessingSettings:
    """The preprocessing ``model`` was trained with: its checkpoint's, else :data:`OFFICIAL`.

    Released checkpoints and checkpoints written before UniversalSeg stored the field get :data:`OFFICIAL`.
    ``load_model`` has already validated the stored value.
    """
    stored = (getattr(model, "metadata", None) or {}).get("preprocessing")
    return OFFICIAL if stored is None else PreprocessingSettings.from_metadata(stored)


def preprocessing_origin(model: object) -> str:
    """Where :func:`preprocessing_settings` comes from, as a log phrase (``from the checkpoint's ...``)."""
    metadata = getattr(model, "metadata", None) or {}
    if metadata.get("preprocessing") is None:
        return "official defaults"
    sidecar = metadata.get("preprocessing_file")
    if sidecar:
        return f"from {sidecar}"
    return "from the checkpoint's training settings"
