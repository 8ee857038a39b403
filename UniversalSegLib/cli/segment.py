"""``universalseg segment``: segment a CT and write a labelmap / Slicer segmentation / masks / statistics.

Everything that can be checked cheaply (classes, options, output paths, the input file) is checked
before the long run, so a typo never costs a full inference.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from UniversalSegLib.cli.batch import add_batch_arguments, is_batch, run_batch
from UniversalSegLib.cli.exit_codes import CancelledRun, CliError, ExitCode, fail_with
from UniversalSegLib.cli.progress_output import PROGRESS_MODES, ProgressPrinter
from UniversalSegLib.cli.run_request import (
    COMPILE_AUTO_MIN_INPUTS,
    COMPILE_CHOICES,
    options_from_args,
    select_classes,
)
from UniversalSegLib.cli.writable import first_unwritable
from UniversalSegLib.inference.options import ENGINES, PRECISIONS
from UniversalSegLib.run_choices import (
    DEFAULT_DEVICE,
    DEFAULT_MODEL,
    DEFAULT_SPEED,
    DEVICES,
    MODEL_NAMES,
    SPEED_MODES,
    is_device_name,
)

logger = logging.getLogger("UniversalSegLib.cli")

LABELMAP_EXTENSIONS: tuple[str, ...] = (".nii.gz", ".nii", ".nrrd", ".mha")
SEGMENTATION_EXTENSION = ".seg.nrrd"
STATISTICS_EXTENSIONS: tuple[str, ...] = (".json", ".csv")


@dataclass
class SegmentJob:
    """A validated segmentation request (built from the command line or by the demo)."""

    input: Path
    outputs: list[Path]
    classes: list[int]
    options: object  # UniversalSegLib.inference.InferenceOptions
    model_name: str = DEFAULT_MODEL
    speed: str = DEFAULT_SPEED
    weights: Path | None = None
    backbone: str | None = None
    masks_dir: Path | None = None
    statistics: Path | None = None
    overwrite: bool = False
    accept_license: bool = False
    print_statistics: bool = False
    feature_cache: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    engine_timings: dict[str, float] = field(default_factory=dict)


def add_speed_argument(parser: argparse.ArgumentParser) -> None:
    """``--speed faithful|balanced|fast`` (shared by ``segment`` and ``demo``)."""
    parser.add_argument(
        "--speed",
        choices=SPEED_MODES,
        default=DEFAULT_SPEED,
        help="faithful (default: official settings, the published numbers), balanced (OpenVINO bf16 on "
        "CPUs with native bf16: about 4x, masks nearly identical; fp16 on GPUs) or fast (OpenVINO int8, "
        "the model quantized once: about 5x, organ borders may shift by a voxel). See docs/speed.md",
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="segment a CT volume",
        description="Segment CT_INPUT (NIfTI, NRRD, MetaImage or a DICOM folder) with the CLIP-Driven "
        "Universal Model. OUTPUT's extension picks the format: .seg.nrrd = 3D Slicer segmentation, "
        ".nii.gz/.nii/.nrrd/.mha = multi-label labelmap (voxel value = class index, see `universalseg "
        "classes`). Without --classes/--preset all 32 classes are segmented. A batch (several inputs, a "
        "folder of CT files or of DICOM series folders, or --input-list) writes one file per CT into the "
        "OUTPUT folder, named after its input, loads the model once, skips CTs a manifest in that folder "
        "records as done, and reports a failed CT without stopping (exit code 6); under torchrun each rank "
        "takes its share of the inputs (README: Batches).",
    )
    parser.add_argument(
        "input",
        metavar="CT_INPUT",
        nargs="*",
        help="CT image file or DICOM series folder; several, or a folder of CT files or of DICOM series "
        "folders, for a batch",
    )
    parser.add_argument(
        "-o", "--output", required=True, metavar="OUTPUT", help="output file (for a batch: a folder)"
    )
    selection = parser.add_mutually_exclusive_group()
    selection.add_argument(
        "--classes", nargs="+", metavar="CLASS", help="class keys, names or indices (or presets)"
    )
    selection.add_argument("--preset", metavar="NAME", help="a class preset (see `universalseg classes`)")
    parser.add_argument(
        "--model", choices=MODEL_NAMES, help=f"released model to use (default: {DEFAULT_MODEL})"
    )
    parser.add_argument("--weights", metavar="FILE", help="checkpoint file instead of the downloaded weights")
    parser.add_argument(
        "--device",
        default=DEFAULT_DEVICE,
        type=_device,
        help=f"{'|'.join(DEVICES)}|cuda:N (default: {DEFAULT_DEVICE})",
    )
    parser.add_argument("--masks-dir", metavar="DIR", help="also write one binary mask per class into DIR")
    parser.add_argument("--statistics", metavar="FILE", help="write per-class statistics (.json or .csv)")
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES, help="bar (default on a terminal), json or none"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--no-postprocess", action="store_true", help="skip the official post-processing")
    feature_cache = parser.add_mutually_exclusive_group()
    feature_cache.add_argument(
        "--feature-cache",
        action="store_true",
        help="batch: keep each CT's image features too (a batch keeps none by default: about 1-2 GB per CT)",
    )
    feature_cache.add_argument(
        "--no-feature-cache",
        action="store_true",
        help="neither reuse nor keep image features (by default a run keeps them, so that asking for more "
        "classes of the same CT with the same model and options runs only the class heads: seconds). "
        "Limit: $UNIVERSALSEG_FEATURE_CACHE_GB (default 4); clear: `universalseg weights clear --all`",
    )
    add_speed_argument(parser)
    add_batch_arguments(parser)
    parser.add_argument(
        "--overlap", type=float, help="sliding-window overlap in [0, 1) (default: from --speed, 0.5 faithful)"
    )
    parser.add_argument(
        "--blend",
        choices=("gaussian", "gaussian_monai", "constant"),
        default="gaussian",
        help="window blending",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="compute precision (default: from --speed); int8 (what --speed fast uses on CPUs) needs "
        "--engine openvino and NNCF and quantizes the model once (about 2 min; docs/speed.md)",
    )
    parser.add_argument(
        "--sw-batch-size", type=int, metavar="N", help="windows per forward pass (default: from --speed)"
    )
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="torch or openvino (CPU only; converted once per model and cached). Default: from --speed",
    )
    parser.add_argument(
        "--accept-license", action="store_true", help="accept the weights license (CC BY-NC-ND)"
    )
    parser.add_argument(
        "--roi-size",
        type=int,
        metavar="N",
        help="sliding-window side in voxels (default: the window the model was trained with, from its "
        "checkpoint; 96 for the released models). A size other than the training one warns",
    )
    parser.add_argument(
        "--strict-fp32",
        action="store_true",
        help="on CUDA GPUs, compute float32 in strict IEEE float32 instead of on TF32 tensor cores (slower; "
        "the default TF32 for convolutions and matrix products is what the official code ran with). See "
        "docs/speed.md",
    )
    parser.add_argument(
        "--compile",
        choices=COMPILE_CHOICES,
        default="auto",
        help="on CUDA GPUs, run the image encoder through torch.compile (compiled once per machine and kept "
        f"in the cache folder; the first compilation takes minutes). auto: only for batches of "
        f"{COMPILE_AUTO_MIN_INPUTS} or more CTs in the balanced and fast modes. Default: auto",
    )
    parser.set_defaults(handler=run)


def _device(value: str) -> str:
    if is_device_name(value):
        return value
    raise argparse.ArgumentTypeError(f"invalid device {value!r}: use {', '.join(DEVICES)} or cuda:N")


def run(args: argparse.Namespace) -> int:
    from UniversalSegLib.cli.progress_output import default_mode

    if is_batch(args):
        return run_batch(args)
    job = job_from_args(args)
    printer = ProgressPrinter(default_mode(args.progress))
    return execute(job, printer)


def job_from_args(args: argparse.Namespace) -> SegmentJob:
    """Validate the arguments (classes, options, paths) and build a :class:`SegmentJob`."""
    if not args.input:
        raise CliError("no input: give CT_INPUT (a CT file or DICOM folder) or --input-list", ExitCode.USAGE)
    classes = select_classes(args.classes, args.preset)
    options = options_from_args(args)
    job = SegmentJob(
        input=Path(args.input[0]).expanduser(),
        outputs=[Path(args.output).expanduser()],
        classes=classes,
        options=options,
        model_name=args.model or DEFAULT_MODEL,
        speed=args.speed,
        weights=Path(args.weights).expanduser() if args.weights else None,
        backbone=args.model,
        masks_dir=Path(args.masks_dir).expanduser() if args.masks_dir else None,
        statistics=Path(args.statistics).expanduser() if args.statistics else None,
        overwrite=args.overwrite,
        accept_license=args.accept_license,
        feature_cache=not args.no_feature_cache,
    )
    check_paths(job)
    return job


def check_paths(job: SegmentJob, check_input: bool = True) -> None:
    """Check outputs (extension, existence, writable folder) and the input before any work."""
    from UniversalSegLib.io.atomic import file_extension
    from UniversalSegLib.io.class_lookup import class_label

    for output in job.outputs:
        extension = file_extension(output)
        if extension not in (SEGMENTATION_EXTENSION, *LABELMAP_EXTENSIONS):
            raise CliError(
                f"cannot tell the output format of {output.name!r}: use .seg.nrrd (Slicer segmentation) or "
                f"{', '.join(LABELMAP_EXTENSIONS)} (labelmap)",
                ExitCode.USAGE,
            )
    if job.statistics is not None and file_extension(job.statistics) not in STATISTICS_EXTENSIONS:
        raise CliError(f"--statistics must end in .json or .csv, got {job.statistics.name!r}", ExitCode.USAGE)
    targets = list(job.outputs)
    if job.statistics is not None:
        targets.append(job.statistics)
    if job.masks_dir is not None:
        if job.masks_dir.exists() and not job.masks_dir.is_dir():
            raise CliError(f"--masks-dir {job.masks_dir} is a file; give a folder", ExitCode.OUTPUT)
        targets += [job.masks_dir / f"{class_label(index).key}.nii.gz" for index in job.classes]
    if len({path.resolve() for path in targets}) != len(targets):
        raise CliError("two outputs have the same path; give each output its own file", ExitCode.USAGE)
    for target in targets:
        if target.is_dir():
            raise CliError(f"output {target} is a folder; give a file name", ExitCode.OUTPUT)
        if target.exists() and not job.overwrite:
            raise CliError(f"output {target} already exists; pass --overwrite to replace it", ExitCode.OUTPUT)
    unwritable = first_unwritable(targets)  # a test file is created and removed in each output folder
    if unwritable is not None:
        target, error = unwritable
        raise CliError(
            f"cannot write {target}: creating a test file in {target.absolute().parent} failed "
            f"({error.strerror or error}); choose a folder you can write to",
            ExitCode.OUTPUT,
        )
    if check_input and not job.input.exists():
        raise CliError(f"input {job.input} does not exist", ExitCode.INPUT)


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def execute(job: SegmentJob, printer: ProgressPrinter) -> int:
    """Run a validated job with SIGTERM/SIGINT cancellation; returns the exit code."""
    from UniversalSegLib.cli.cancel import cancel_on_signals

    start = time.perf_counter()
    try:
        with cancel_on_signals() as cancel:
            _execute(job, printer, cancel)
    finally:
        printer.close()
    job.timings["total"] = time.perf_counter() - start
    logger.info("Timings: %s", format_timings(job))
    return ExitCode.OK


def format_timings(job: SegmentJob) -> str:
    """``read 0.10 s, ..., segment 3.00 s (preprocess 0.20 s, ...), ..., total 4.00 s``."""
    parts = []
    for name, seconds in job.timings.items():
        part = f"{name} {seconds:.2f} s"
        if name == "segment" and job.engine_timings:
            inner = ", ".join(
                f"{stage} {value:.2f} s" for stage, value in job.engine_timings.items() if stage != "total"
            )
            part += f" ({inner})"
        parts.append(part)
    return ", ".join(parts)


def _execute(job: SegmentJob, printer: ProgressPrinter, cancel: threading.Event) -> None:
    from UniversalSegLib.inference.lean_import import import_monai_lean
    from UniversalSegLib.progress import ProgressReporter

    import_monai_lean()  # less memory and a faster start; this process only segments

    reporter = ProgressReporter(callback=printer)
    timings = job.timings

    reporter("load", message=f"reading {job.input}")
    with _timed(timings, "read"), fail_with(ExitCode.INPUT, f"cannot read input {job.input}"):
        from UniversalSegLib.io import check_ct_intensity, read_image

        image = read_image(job.input)
        warning = check_ct_intensity(image)
    if warning:
        logger.warning("%s", warning)
    _check_cancel(cancel)

    weights_path = _weights_path(job, printer, cancel)
    reporter("load", message=f"loading model {weights_path.name}")
    with _timed(timings, "load_model"), fail_with(ExitCode.WEIGHTS, f"cannot load weights {weights_path}"):
        from UniversalSegLib.weights.checkpoint import load_model

        model = load_model(weights_path, backbone=job.backbone)
    _check_cancel(cancel)
    from UniversalSegLib.inference.preprocessing_choice import choose_preprocessing

    preprocessing = choose_preprocessing(model, job.options)  # segment() logs it and any warning
    job.options = preprocessing.run_options(job.options)  # the estimate counts the model's windows

    from UniversalSegLib.inference import segment
    from UniversalSegLib.inference.errors import InferenceError

    json_reporter = reporter if printer.mode == "json" else None
    feature_cache = _feature_cache(job)
    if not _announce_reuse(job, image, model, feature_cache, json_reporter):
        _announce_estimate(job, image, model, json_reporter, preprocessing.settings)
    _check_cancel(cancel)
    with (
        _timed(timings, "segment"),
        fail_with(ExitCode.INPUT, "cannot segment this image", (InferenceError,)),
    ):
        result = segment(
            image, model, job.classes, job.options, reporter, cancel, feature_cache=feature_cache
        )
    job.engine_timings = dict(getattr(result, "timings", {}) or {})
    _record_rate(job, model, result)
    _check_cancel(cancel)

    masks = {index: result.masks[index] for index in job.classes if index in result.masks}
    reporter("write", 0, _output_count(job), "writing outputs")
    stats = None
    if job.statistics is not None or job.print_statistics:
        from UniversalSegLib.inference.statistics import compute_statistics

        with _timed(timings, "statistics"):
            stats = compute_statistics(masks, image)
    with _timed(timings, "write"):
        _write_outputs(job, masks, stats, reporter, cancel)
    reporter("done", 1, 1, "finished")
    if stats is not None:
        from UniversalSegLib.inference.statistics import format_statistics_table

        table = format_statistics_table(stats)
        if job.print_statistics:
            print(table, flush=True)
        else:
            logger.info("Statistics:\n%s", table)


def _announce_reuse(job: SegmentJob, image, model, feature_cache, reporter) -> bool:
    """When the run will reuse stored image features, say so instead of a full run's estimate (which could
    probe the network or check an OpenVINO conversion: seconds a re-query should not spend)."""
    from UniversalSegLib.inference.pipeline import stored_features_for

    if feature_cache is None:
        return False
    try:
        stored = stored_features_for(image, model, job.options, feature_cache)
    except Exception as exc:  # noqa: BLE001 - an estimate is a courtesy, never a reason to fail
        logger.debug("no feature cache check: %s", exc)
        return False
    if stored is None:
        return False
    windows = stored.windows
    message = f"Estimated time: seconds (reuses the image features of an earlier run, {windows} windows)"
    logger.info("%s", message)
    if reporter is not None:
        reporter("load", message=message)
    return True


def _announce_estimate(job: SegmentJob, image, model, reporter, settings) -> None:
    """Log ``Estimated time: about N min on CPU (W windows)`` once; also send it to ``reporter`` if given.

    Pass a reporter only for ``--progress json`` (a program reads it): in the other modes the progress
    display would print the same line a second time.

    Seconds per window come from the last run on this machine, else a quick probe (cached), else a table.
    An estimate that cannot be made (an unusual predictor, an unavailable device) is skipped silently.
    ``settings`` (the run's ``PreprocessingSettings``) give the grid the windows are counted on.
    """
    from UniversalSegLib.inference import estimate
    from UniversalSegLib.inference.device import autocast_precision, resolve_device

    options = job.options
    try:
        device = resolve_device(options.device)
        backbone = getattr(model, "backbone_name", job.model_name)
        probe_size = min(estimate.PROBE_SIZE, options.roi_size)

        def probe() -> float:
            precision = autocast_precision(options.precision, device)  # int8: PyTorch probes bf16
            return estimate.probe_seconds_per_window(  # already in the table's 96³ unit
                model, device, precision, options.sw_batch_size, probe_size
            )

        result = estimate.estimate_run(
            estimate.foreground_extent_mm(image, settings.intensity_min),
            backbone,
            device.type,
            options.precision,
            options.overlap,
            options.sw_batch_size,
            options.roi_size,
            probe,
            engine=options.engine,
            spacing_mm=settings.spacing_mm,
        )
    except Exception as exc:  # noqa: BLE001 - an estimate is a courtesy, never a reason to fail
        logger.debug("no time estimate: %s", exc)
        return
    message = f"Estimated time: {result.describe()}"
    if options.engine == "openvino" and device.type == "cpu" and _needs_conversion(model, options):
        minutes = 3 if options.precision == "int8" else 1
        message += f", plus about {minutes} min once to prepare the OpenVINO engine for this model"
    logger.info(
        "%s [speed %s; per window %.2f s from %s]",
        message,
        job.speed,
        result.seconds_per_window,
        result.source,
    )
    if reporter is not None:
        reporter("load", message=message)


def _needs_conversion(model, options) -> bool:
    """Whether this OpenVINO run of ``model`` will convert (or quantize) it first (nothing stored yet)."""
    from UniversalSegLib.inference.engines.openvino_encoder import stored_encoder_path

    roi = [options.roi_size] * 3
    try:
        return (
            hasattr(model, "image_features")
            and stored_encoder_path(model, roi, precision=options.precision) is None
        )
    except Exception:  # noqa: BLE001 - no OpenVINO: the run itself will say so
        return False


def _feature_cache(job: SegmentJob):
    """The per-user feature cache, or None with ``--no-feature-cache``."""
    if not job.feature_cache:
        return None
    from UniversalSegLib.inference.feature_cache import FeatureCache

    return FeatureCache()


def _record_rate(job: SegmentJob, model, result) -> None:
    """Remember this run's network seconds per 96³ window for the next estimate."""
    from UniversalSegLib.inference import estimate

    if getattr(result, "reused_features", False):
        return  # only the class heads ran: not a measure of the network's speed
    windows = int(getattr(result, "windows", 0) or 0)
    network = float((getattr(result, "timings", {}) or {}).get("network", 0.0))
    device = str(getattr(result, "device", "") or "cpu").split(":")[0]
    if windows and network > 0:
        options = job.options
        per_96 = network * (estimate.ROI_SIZE / options.roi_size) ** 3
        backbone = getattr(model, "backbone_name", job.model_name)
        estimate.record_run(
            backbone, device, options.precision, options.sw_batch_size, per_96, windows, options.engine
        )


def _weights_path(job: SegmentJob, printer: ProgressPrinter, cancel: threading.Event) -> Path:
    if job.weights is not None:
        if not job.weights.is_file():
            raise CliError(f"weights file {job.weights} does not exist", ExitCode.WEIGHTS)
        return job.weights
    from UniversalSegLib.cli.downloads import fetch
    from UniversalSegLib.weights.manager import WeightsManager

    job.backbone = job.backbone or job.model_name  # a cached file must hold the model it is cached as
    with _timed(job.timings, "weights"):
        return fetch(WeightsManager(), job.model_name, job.accept_license, printer, cancel)


def _output_count(job: SegmentJob) -> int:
    return len(job.outputs) + (job.masks_dir is not None) + (job.statistics is not None)


def _write_outputs(job: SegmentJob, masks: dict, stats, reporter, cancel: threading.Event) -> None:
    """Write every output; on cancel or failure, delete what this run wrote (no partial result)."""
    from UniversalSegLib.io import write_labelmap, write_masks, write_segmentation_nrrd
    from UniversalSegLib.io.atomic import file_extension

    written: list[Path] = []
    try:
        with fail_with(ExitCode.OUTPUT, "cannot write output", (OSError, ValueError)):
            for output in job.outputs:
                _check_cancel(cancel)
                if file_extension(output) == SEGMENTATION_EXTENSION:
                    written.append(write_segmentation_nrrd(masks, output, overwrite=job.overwrite))
                else:
                    written.append(write_labelmap(masks, output, overwrite=job.overwrite))
                logger.info("Wrote %s", output)
                reporter("write", job.outputs.index(output) + 1, _output_count(job), str(output))
            if job.masks_dir is not None:
                _check_cancel(cancel)
                written += write_masks(masks, job.masks_dir, overwrite=job.overwrite).values()
                logger.info("Wrote %d masks to %s", len(masks), job.masks_dir)
                reporter("write", len(job.outputs) + 1, _output_count(job), str(job.masks_dir))
            if job.statistics is not None:
                from UniversalSegLib.inference.statistics import write_statistics

                _check_cancel(cancel)
                written.append(write_statistics(stats, job.statistics, overwrite=job.overwrite))
                logger.info("Wrote statistics to %s", job.statistics)
                reporter("write", _output_count(job), _output_count(job), "statistics")
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    if cancel.is_set():  # a signal during the last write: keep the promise of no output
        for path in written:
            path.unlink(missing_ok=True)
        raise CancelledRun("cancelled while writing; outputs removed")


def _check_cancel(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise CancelledRun("cancelled")
