"""``segment``: a SimpleITK CT in, one uint8 mask per requested class on the input grid out."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import SimpleITK as sitk  # noqa: N813
import torch

from ..progress import ProgressCallback, ProgressReporter
from .device import (
    Attempt,
    autocast_precision,
    fallback_attempts,
    precision_for_device,
    resolve_device,
    run_with_oom_fallback,
)
from .engines.base import Engine
from .engines.selection import choose_engine
from .errors import InferenceError, SegmentationCancelled, error_summary
from .feature_cache import FeatureCache, StoredFeatures
from .feature_session import FeatureSession
from .geometry import check_ct_image
from .options import InferenceOptions
from .postprocessing import postprocess_masks, required_classes
from .preprocessing import PreprocessedImage, preprocess
from .preprocessing_choice import choose_preprocessing
from .preprocessing_settings import PreprocessingSettings
from .resampling import mask_to_input_grid
from .sliding_window import Predictor, sliding_window_logits
from .tf32 import tf32_mode

logger = logging.getLogger(__name__)


@dataclass
class SegmentationResult:
    """What :func:`segment` returns.

    Attributes:
        masks: official class index → uint8 0/1 image exactly on the input grid.
        classes: the requested class indices, in the order asked.
        timings: seconds per stage (``preprocess``, ``inference``, ``postprocess``, ``resample``, ``total``);
            ``network`` is the part of ``inference`` spent inside the model's forward passes (the rest of
            ``inference`` is padding, blending and thresholding).
        warnings: things the user should know (device fallback, skipped post-processing rules).
        windows: sliding windows run.
        device: the device the windows ran on (after any out-of-memory fallback).
        probabilities: only with ``keep_probabilities=True``: class index → float16 sigmoid probabilities
            on the model grid (``preprocessing``'s: 1.5 mm RAS for released models; cropped), before
            post-processing.
        reused_features: the image features came from the feature cache (only the class heads ran).
        preprocessing: what the CT was preprocessed with (the model's training settings unless the
            options override them; window size included).
    """

    masks: dict[int, sitk.Image]
    classes: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    windows: int = 0
    device: str = ""
    probabilities: dict[int, np.ndarray] | None = None
    reused_features: bool = False
    preprocessing: PreprocessingSettings | None = None


def model_class_count(model: object) -> int | None:
    """Number of output classes of ``model`` when it says so (``num_classes``, ``class_names``, embedding)."""
    count = getattr(model, "num_classes", None)
    if isinstance(count, int):
        return count
    names = getattr(model, "class_names", None)
    if names:
        return len(names)
    embedding = getattr(model, "organ_embedding", None)
    if isinstance(embedding, torch.Tensor) and embedding.ndim == 2:
        return int(embedding.shape[0])
    return None


def _check_classes(classes: Sequence[int], class_count: int | None) -> list[int]:
    """Requested indices, de-duplicated in order; clear errors for anything else."""
    requested: list[int] = []
    for value in classes:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise InferenceError(
                f"classes must be official indices (int), got {value!r}; "
                "use UniversalSegLib.catalog.resolve_classes to turn names into indices"
            )
        index = int(value)
        if index < 1 or (class_count is not None and index > class_count):
            upper = class_count if class_count is not None else "N"
            raise InferenceError(f"class index {index} is out of range 1..{upper} for this model")
        if index not in requested:
            requested.append(index)
    if not requested:
        raise InferenceError("no class requested: pass at least one class index")
    return requested


def _postprocess_inputs(requested: Sequence[int], class_count: int | None) -> set[int]:
    """Classes to compute besides the requested ones, so post-processing has its inputs."""
    extra = required_classes(requested)
    if class_count is not None:
        extra = {index for index in extra if index <= class_count}
    return extra


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def _model_prepared(model: object, device: torch.device, sw_batch_size: int) -> Iterator[None]:
    """Eval mode on ``device`` (and per-window norm for batched windows), restored afterwards."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    was_training = model.training
    parameter = next(model.parameters(), None)
    original_device = parameter.device if parameter is not None else None
    had_flag = hasattr(model, "per_sample_norm")
    previous_flag = getattr(model, "per_sample_norm", None)
    model.eval()
    model.to(device)
    if had_flag and sw_batch_size > 1:
        model.per_sample_norm = True
    try:
        yield
    finally:
        if had_flag:
            model.per_sample_norm = previous_flag
        if original_device is not None:
            model.to(original_device)
        model.train(was_training)


MASKS_PER_RESAMPLE = 8


def _group_to_input_grid(
    masks: dict[int, np.ndarray], affine: np.ndarray, image: sitk.Image
) -> dict[int, sitk.Image]:
    """Up to 8 masks onto the input grid with one nearest-neighbour resampling: each mask is one bit of a
    uint8 volume, so the result equals resampling each mask alone, bit for bit, at an eighth of the cost."""
    if len(masks) == 1:
        index, mask = next(iter(masks.items()))
        return {index: mask_to_input_grid(mask, affine, image)}
    packed = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8)
    for bit, mask in enumerate(masks.values()):
        packed |= np.asarray(mask, dtype=np.uint8) << np.uint8(bit)
    resampled = mask_to_input_grid(packed, affine, image)
    bits = sitk.GetArrayViewFromImage(resampled)
    output = {}
    for bit, index in enumerate(masks):
        single = sitk.GetImageFromArray((bits >> np.uint8(bit)) & np.uint8(1))
        single.CopyInformation(resampled)
        output[index] = single
    return output


def _check_cancel(cancel: threading.Event | None, stage: str) -> None:
    if cancel is not None and cancel.is_set():
        raise SegmentationCancelled(f"cancelled before {stage}")


@dataclass
class _RunPrecision:
    """The engine and precisions an attempt runs with."""

    engine: Engine
    precision: str  # what the engine runs (int8 for OpenVINO's int8 model)
    autocast: str  # PyTorch's autocast precision around the predictor

    @property
    def key_precision(self) -> str:
        """The precision that made the features (the feature cache's key)."""
        return self.precision if self.engine.name == "openvino" else self.autocast


def _run_precision(
    model: Predictor, options: InferenceOptions, device: torch.device, warnings: list[str]
) -> _RunPrecision:
    """The engine that can run ``model`` on ``device`` and the precisions it uses (fallbacks warned)."""
    precision = precision_for_device(options.precision, device)
    if precision != options.precision:
        warnings.append(f"precision {options.precision} is not used on {device}; ran {precision}")
    engine = choose_engine(model, options, device, warnings)
    autocast = autocast_precision(precision, device)
    if precision == "int8" and engine.name != "openvino":
        warnings.append(f"precision int8 needs the OpenVINO engine; ran {autocast} in PyTorch")
    return _RunPrecision(engine, precision, autocast)


def _first_attempt_features(
    features: FeatureSession, model: Predictor, options: InferenceOptions
) -> StoredFeatures | None:
    """The stored features the first attempt would replay (looked up before preprocessing)."""
    device = resolve_device(options.device)
    attempt = fallback_attempts(device, options.sw_batch_size)[0]
    run = _run_precision(model, options, attempt.device, [])
    return features.find(attempt, run.engine.name, run.key_precision)


def stored_features_for(
    image: sitk.Image, model: Predictor, options: InferenceOptions, feature_cache: FeatureCache | None
) -> StoredFeatures | None:
    """The stored image features :func:`segment` would reuse for ``image`` (None: a full run), e.g. for an
    estimate that must not promise minutes for a re-query. Costs a digest of the CT; runs nothing."""
    choice = choose_preprocessing(model, options)
    features = FeatureSession.open(feature_cache, model, image, choice.settings, choice.run_options(options))
    return _first_attempt_features(features, model, features.options) if features is not None else None


def _preprocess(
    image: sitk.Image, settings: PreprocessingSettings, options: InferenceOptions, warnings: list[str]
) -> PreprocessedImage:
    """The CT preprocessed on the run's GPU when it has one (milliseconds instead of seconds of
    resampling), else on the CPU; a GPU that cannot (out of memory, anything else) leaves it to the CPU
    and says so in ``warnings``."""
    device = resolve_device(options.device)
    if device.type != "cuda":
        return preprocess(image, settings)
    try:
        return preprocess(image, settings, device=device)
    except InferenceError:
        raise  # about the image itself: the CPU would say the same
    except Exception as error:  # noqa: BLE001 - any GPU failure: the CPU path is the reference
        warnings.append(f"preprocessing on {device} failed ({error_summary(error)}); preprocessed on the CPU")
        return preprocess(image, settings)


def _predict_masks(
    prepared: PreprocessedImage,
    model: Predictor,
    computed: Sequence[int],
    options: InferenceOptions,
    reporter: ProgressReporter,
    cancel: threading.Event | None,
    warnings: list[str],
    stats: dict[str, float],
    probabilities: dict[int, np.ndarray] | None = None,
    features: FeatureSession | None = None,
    prepare: Callable[[], PreprocessedImage] | None = None,
) -> dict[int, np.ndarray]:
    """Sliding window on the best device that has the memory, then ``sigmoid > 0.5`` per class.

    ``stats`` receives ``network`` seconds, ``windows`` and ``reused`` (image features replayed from
    ``features``); ``probabilities`` (when given) the float16 probabilities. One channel at a time is
    turned into a mask, so no extra full-volume float copy of all channels is made. ``prepared`` may be a
    placeholder (stored geometry, no voxels) when the features are expected from the cache: an attempt that
    misses them then preprocesses with ``prepare``.
    """
    channels = [index - 1 for index in computed]

    def run(attempt: Attempt) -> dict[int, np.ndarray]:
        stats.clear()
        stats["device"] = attempt.device
        with _model_prepared(model, attempt.device, attempt.sw_batch_size):
            run = _run_precision(model, options, attempt.device, warnings)
            engine, precision, torch_precision = run.engine, run.precision, run.autocast
            source = features.source(attempt, engine.name, run.key_precision, reporter) if features else None
            predictor = source.replay() if source is not None else None
            volume = prepared
            if predictor is None:
                if prepare is not None:
                    volume = prepare()  # the features were expected from the cache but are not there
                predictor = engine.predictor(
                    model, options, attempt.device, precision, reporter, cancel, warnings
                )
                if source is not None:
                    predictor = source.recording(predictor)
            stats["reused"] = source is not None and source.reused
            try:
                logits = sliding_window_logits(
                    volume.tensor[None],
                    predictor,
                    channels,
                    roi_size=options.roi_size,
                    overlap=options.overlap,
                    blend=options.blend,
                    sw_batch_size=attempt.sw_batch_size,
                    device=attempt.device,
                    precision=torch_precision,
                    on_window=lambda done, total: reporter("inference", done, total),
                    cancel=cancel,
                    stats=stats,
                )
            except BaseException:
                if source is not None:
                    source.abort()
                raise
            if source is not None:
                source.commit(reporter)
            masks = {}
            for position, index in enumerate(computed):
                probability = torch.sigmoid(logits[0, position])
                masks[index] = (probability > 0.5).cpu().numpy()
                if probabilities is not None:
                    probabilities[index] = probability.to(torch.float16).cpu().numpy()
                del probability
            del logits
            return masks

    device = resolve_device(options.device)
    return run_with_oom_fallback(run, fallback_attempts(device, options.sw_batch_size), warnings)


def _check_preprocessed(preprocessed: PreprocessedImage, chosen: PreprocessingSettings) -> None:
    """``preprocessed`` was made with ``chosen``'s spacing, orientation and intensity window.

    Raises:
        InferenceError: it was not (the message says how to make a matching one).
    """
    made = getattr(preprocessed, "settings", None)
    if not isinstance(made, PreprocessingSettings) or not isinstance(
        getattr(preprocessed, "tensor", None), torch.Tensor
    ):
        raise InferenceError(
            f"preprocessed must be a PreprocessedImage from preprocess(), got {type(preprocessed).__name__}"
        )
    if dataclasses.replace(made, roi_size=chosen.roi_size) != chosen:  # the window size is not preprocessing
        raise InferenceError(
            f"the preprocessed image was made with {made.describe()}, but this run uses {chosen.describe()}: "
            "make it with preprocess(image, choose_preprocessing(model, options).settings), or pass "
            "preprocessed=None to let segment preprocess"
        )


def segment(
    image: sitk.Image,
    model: Predictor,
    classes: Sequence[int],
    options: InferenceOptions | None = None,
    progress: ProgressCallback | ProgressReporter | None = None,
    cancel: threading.Event | None = None,
    keep_probabilities: bool = False,
    feature_cache: FeatureCache | None = None,
    preprocessed: PreprocessedImage | None = None,
) -> SegmentationResult:
    """Segment ``classes`` in a CT.

    Args:
        image: 3D scalar CT in HU (any orientation).
        model: a :class:`~UniversalSegLib.model.UniversalModel` or any predictor called as
            ``model(x, channels=[...])`` (see :class:`~UniversalSegLib.inference.sliding_window.Predictor`).
        classes: official class indices (1..32, or up to the model's class count).
        options: see :class:`InferenceOptions`.
        progress: a ``ProgressEvent`` callback or a :class:`ProgressReporter`.
        cancel: set it from another thread to stop; :class:`SegmentationCancelled` is raised.
        keep_probabilities: also return the probabilities of the computed classes (benchmarks, studies).
        feature_cache: keep this run's image features there, and answer from them when the same
            preprocessed CT comes again with the same weights and options (only the class heads run then;
            :mod:`~UniversalSegLib.inference.feature_cache`). None (the default) keeps nothing.
        preprocessed: ``image`` already preprocessed, e.g. in a background thread while another CT was
            segmented: ``preprocess(image, choose_preprocessing(model, options).settings)``. It is used
            instead of preprocessing again (``timings["preprocess"]`` then covers only the check and the
            feature-cache lookup; with stored features it is not needed at all). Its spacing, orientation
            and intensity window must be the chosen ones (the window size does not change preprocessing);
            otherwise :class:`InferenceError` is raised rather than silently preprocessing twice. That it
            was made from ``image`` is the caller's promise (not checked).

    Returns:
        :class:`SegmentationResult` with one uint8 mask per requested class on the input grid.

    Raises:
        InferenceError: bad image, classes or options, or ``preprocessed`` made with other settings.
        SegmentationCancelled: ``cancel`` was set.
    """
    options = options or InferenceOptions()
    options.validate()
    check_ct_image(image)
    class_count = model_class_count(model)
    requested = _check_classes(classes, class_count)
    extra = _postprocess_inputs(requested, class_count) if options.postprocess else set()
    computed = sorted(set(requested) | extra)
    reporter = progress if isinstance(progress, ProgressReporter) else ProgressReporter(progress)
    timings: dict[str, float] = {}
    warnings: list[str] = []
    start = time.perf_counter()

    with _torch_threads(options.threads), tf32_mode(options.tf32):
        _check_cancel(cancel, "preprocessing")
        reporter("preprocess", 0, 1)
        choice = choose_preprocessing(model, options)  # the checkpoint's settings unless overridden
        options = choice.run_options(options)
        warnings.extend(choice.warnings)
        if preprocessed is not None:
            _check_preprocessed(preprocessed, choice.settings)
        features = FeatureSession.open(feature_cache, model, image, choice.settings, options)
        stored = _first_attempt_features(features, model, options) if features is not None else None
        prepare = functools.cache(
            lambda: (
                preprocessed
                if preprocessed is not None
                else _preprocess(image, choice.settings, options, warnings)
            )
        )
        if stored is not None:  # a re-query: the stored geometry replaces preprocessing
            prepared = features.placeholder(stored, choice.settings)
        else:
            prepared, prepare = prepare(), None
        if features is not None:
            features.set_prepared(prepared)
        reporter("preprocess", 1, 1)
        timings["preprocess"] = time.perf_counter() - start
        logger.info(
            "Preprocessing: %s; %s -> %s voxels%s",
            choice.describe(),
            image.GetSize(),
            prepared.shape,
            " (done beforehand)" if preprocessed is not None and stored is None else "",
        )

        _check_cancel(cancel, "inference")
        stage_start = time.perf_counter()
        stats: dict = {}
        probabilities: dict[int, np.ndarray] | None = {} if keep_probabilities else None
        masks = _predict_masks(
            prepared,
            model,
            computed,
            options,
            reporter,
            cancel,
            warnings,
            stats,
            probabilities,
            features=features,
            prepare=prepare,
        )
        timings["inference"] = time.perf_counter() - stage_start
        timings["network"] = float(stats.get("network", 0.0))

        _check_cancel(cancel, "post-processing")
        stage_start = time.perf_counter()
        reporter("postprocess", 0, 1)
        if options.postprocess:
            masks = postprocess_masks(masks, warnings)
        reporter("postprocess", 1, 1)
        timings["postprocess"] = time.perf_counter() - stage_start

        stage_start = time.perf_counter()
        output: dict[int, sitk.Image] = {}
        for start_at in range(0, len(requested), MASKS_PER_RESAMPLE):
            _check_cancel(cancel, "resampling")
            group = requested[start_at : start_at + MASKS_PER_RESAMPLE]
            output.update(_group_to_input_grid({i: masks[i] for i in group}, prepared.affine, image))
            reporter("resample", len(output), len(requested))
        timings["resample"] = time.perf_counter() - stage_start
    timings["total"] = time.perf_counter() - start
    logger.debug("segmentation timings (s): %s", {k: round(v, 3) for k, v in timings.items()})
    warnings = list(dict.fromkeys(warnings))  # a fallback met again by a later attempt is said once
    for message in warnings:
        logger.warning(message)
    return SegmentationResult(
        masks=output,
        classes=requested,
        timings=timings,
        warnings=warnings,
        windows=int(stats.get("windows", 0)),
        device=str(stats.get("device", "")),
        probabilities=probabilities,
        reused_features=bool(stats.get("reused", False)),
        preprocessing=choice.settings,
    )
