"""One segmentation run's use of the feature cache: look up, replay, or record and store."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch

from ..progress import ProgressReporter
from .device import Attempt
from .engines.base import splits_features
from .engines.selection import engine_named
from .engines.torch_compile import compiles_on
from .feature_cache import (
    FeatureCache,
    FeatureCacheError,
    FeatureKey,
    StoredFeatures,
    image_digest,
    model_fingerprint,
    software_versions,
)
from .feature_predictors import RecordingPredictor, ReplayPredictor
from .options import InferenceOptions
from .preprocessing import PreprocessedImage
from .preprocessing_settings import PreprocessingSettings
from .sliding_window import Predictor, count_windows
from .tf32 import tf32_state

logger = logging.getLogger(__name__)


@dataclass
class FeatureSource:
    """The cache's part in one attempt: replay an entry, or record the attempt's features."""

    session: FeatureSession
    key: FeatureKey
    stored: StoredFeatures | None = None
    recording_predictor: RecordingPredictor | None = field(default=None, init=False)

    @property
    def reused(self) -> bool:
        return self.stored is not None

    def replay(self) -> Predictor | None:
        """A predictor that answers from the stored features, or None on a miss."""
        if self.stored is None:
            return None
        engine = engine_named(self.key.settings["engine"])
        device = torch.device(self.key.settings["device"])
        return ReplayPredictor(self.stored, engine.class_logits(self.session.model, device))

    def recording(self, predictor: Predictor) -> Predictor:
        """``predictor``, recording its image features into a new entry when it exposes them."""
        if not splits_features(predictor):
            logger.debug("predictor %s does not expose image features; nothing is kept", type(predictor))
            return predictor
        cache, key, windows = self.session.cache, self.key, self.session.windows

        def start(dtype: torch.dtype, head_shape: tuple[int, ...]):
            return cache.start_recording(key, windows, head_shape, dtype, self.session.geometry)

        self.recording_predictor = RecordingPredictor(predictor, start)
        return self.recording_predictor

    def abort(self) -> None:
        recorder = self.recording_predictor.recorder if self.recording_predictor else None
        if recorder is not None:
            recorder.abort()

    def commit(self, reporter: ProgressReporter) -> None:
        """Move the recorded entry into the cache; a failure to store is logged, never raised."""
        recorder = self.recording_predictor.recorder if self.recording_predictor else None
        if recorder is None:
            return
        reporter("features", 0, 1, "storing image features for later questions")
        try:
            path = recorder.commit()
        except (OSError, FeatureCacheError) as exc:
            logger.warning("Image features were not kept for later questions: %s", exc)
            return
        reporter("features", 1, 1, "stored image features for later questions")
        if path is not None:
            logger.info("Stored image features for later questions in %s", path)


@dataclass
class FeatureSession:
    """The cache, the model and the CT of one run (digests computed once).

    Attributes:
        volume: :func:`~UniversalSegLib.inference.feature_cache.image_digest` of the CT and its preprocessing.
        weights: the model's fingerprint.
        windows, geometry: the preprocessed grid's window count and geometry (:meth:`set_prepared`).
    """

    cache: FeatureCache
    model: Any
    options: InferenceOptions
    volume: str
    weights: str
    windows: int = 0
    geometry: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        cache: FeatureCache | None,
        model: Any,
        image: sitk.Image,
        settings: PreprocessingSettings,
        options: InferenceOptions,
    ) -> FeatureSession | None:
        """A session, or None when there is no cache or the model cannot split its features."""
        if cache is None:
            return None
        if not isinstance(model, torch.nn.Module) or not splits_features(model):
            logger.info("The feature cache needs a UniversalModel; this predictor's features are not kept")
            return None
        volume = image_digest(image, settings.to_metadata())
        return cls(cache=cache, model=model, options=options, volume=volume, weights=model_fingerprint(model))

    def set_prepared(self, prepared: PreprocessedImage) -> None:
        """Note the preprocessed grid (window count for recording, geometry for later re-queries)."""
        roi = [int(self.options.roi_size)] * 3
        self.windows = count_windows(prepared.shape, roi, self.options.overlap)
        self.geometry = {
            "shape": list(prepared.shape),
            "affine": np.asarray(prepared.affine, dtype=np.float64).tolist(),
            "crop_start": list(prepared.crop_start),
            "crop_end": list(prepared.crop_end),
            "resampled_shape": list(prepared.resampled_shape),
        }

    def placeholder(self, stored: StoredFeatures, settings: PreprocessingSettings) -> PreprocessedImage:
        """The preprocessed grid of ``stored`` with zero voxels: a replay reads no voxel, only positions."""
        geometry = stored.geometry
        return PreprocessedImage(
            tensor=torch.zeros((1, *geometry["shape"]), dtype=torch.float32),
            affine=np.asarray(geometry["affine"], dtype=np.float64),
            crop_start=tuple(geometry["crop_start"]),
            crop_end=tuple(geometry["crop_end"]),
            resampled_shape=tuple(geometry["resampled_shape"]),
            settings=settings,
        )

    def key(self, attempt: Attempt, engine: str, precision: str) -> FeatureKey:
        """The key of an attempt's features (call it inside the run: it reads the TF32 state in force)."""
        settings = {
            "roi_size": int(self.options.roi_size),
            "overlap": float(self.options.overlap),
            "sw_batch_size": int(attempt.sw_batch_size),
            "engine": engine,
            "precision": precision,
            "device": attempt.device.type,
            "storage": self.cache.storage,
            # TF32 changes CUDA features; read inside the run, where the run's setting is in force
            "tf32": tf32_state() if attempt.device.type == "cuda" else None,
            "compiled": compiles_on(self.options, attempt.device),
        }
        return FeatureKey(self.volume, self.weights, settings, software_versions(engine))

    def find(self, attempt: Attempt, engine: str, precision: str) -> StoredFeatures | None:
        """The stored features for an attempt, without reporting (before preprocessing)."""
        return self.cache.lookup(self.key(attempt, engine, precision))

    def source(
        self, attempt: Attempt, engine: str, precision: str, reporter: ProgressReporter
    ) -> FeatureSource:
        """Look the attempt's key up (reporting a hit) and return what replays or records it."""
        key = self.key(attempt, engine, precision)
        stored = self.cache.lookup(key)
        if stored is not None:
            message = f"reused image features of an earlier run ({stored.windows} windows)"
            reporter("features", 1, 1, message)
            logger.info(
                "Reused image features of an earlier run (%d windows, %s)", stored.windows, stored.path
            )
        return FeatureSource(self, key, stored)
