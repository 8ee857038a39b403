"""Which preprocessing a run uses: the model's training settings unless the options override them.

The settings come from ``options.preprocessing`` when given, else from the model's checkpoint
(:func:`~.preprocessing_settings.preprocessing_settings`: the official values for released models);
``options.roi_size``, when set, replaces the window size. A choice that differs from the settings a
checkpoint says the model was trained with carries a warning.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .preprocessing_settings import PreprocessingSettings, preprocessing_origin, preprocessing_settings


@dataclass(frozen=True)
class PreprocessingChoice:
    """The preprocessing of one run, where it came from and what the user should know about it."""

    settings: PreprocessingSettings
    origin: str
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """``3 mm RAS, intensity -100..200 HU, 64³ windows (from the checkpoint's training settings)``."""
        return f"{self.settings.describe()} ({self.origin})"

    def run_options(self, options: object) -> object:
        """``options`` (an ``InferenceOptions``) with ``roi_size`` set to this choice's window."""
        return dataclasses.replace(options, roi_size=self.settings.roi_size)


def _differences(used: PreprocessingSettings, trained: PreprocessingSettings) -> list[str]:
    """``"3 mm instead of 1.5 mm"``-style phrases, one per setting that differs."""
    texts = {
        "spacing": PreprocessingSettings.spacing_text,
        "orientation": lambda settings: settings.orientation,
        "intensity": PreprocessingSettings.intensity_text,
        "window": lambda settings: f"{settings.roi_size}³ windows",
    }
    return [
        f"{text(used)} instead of {text(trained)}" for text in texts.values() if text(used) != text(trained)
    ]


def choose_preprocessing(model: object, options: object) -> PreprocessingChoice:
    """The preprocessing for running ``model`` with ``options`` (an ``InferenceOptions``).

    Args:
        model: a loaded model (its ``metadata`` may carry the checkpoint's settings) or any predictor.
        options: reads ``preprocessing`` (settings or None) and ``roi_size`` (int or None).
    """
    trained = preprocessing_settings(model)
    given = getattr(options, "preprocessing", None)
    settings, origin = (given, "given in the options") if given is not None else (trained, None)
    origin = origin or preprocessing_origin(model)
    roi_size = getattr(options, "roi_size", None)
    if roi_size is not None and int(roi_size) != settings.roi_size:
        settings = dataclasses.replace(settings, roi_size=int(roi_size))
        origin += f"; window size {int(roi_size)} given"
    warnings: tuple[str, ...] = ()
    checkpoint_knows = (getattr(model, "metadata", None) or {}).get("preprocessing") is not None
    differences = _differences(settings, trained) if checkpoint_knows else []
    if differences:
        warnings = (
            f"preprocessing differs from the settings this model was trained with: {'; '.join(differences)}. "
            "Results may be worse; drop the override (e.g. --roi-size) to use the checkpoint's settings",
        )
    return PreprocessingChoice(settings, origin, warnings)
