"""``universalseg segment`` on many CTs: an output folder, the model loaded once, the next CT read and
preprocessed while the current one is segmented, a resumable manifest with per-CT speed figures, per-CT
failures that do not stop the batch, and sharding over ``torchrun`` ranks.

Which inputs make a batch and what each output is called: :mod:`~UniversalSegLib.cli.batch_inputs`;
the background read and preprocessing: :mod:`~UniversalSegLib.cli.batch_loading`; the figures:
:mod:`~UniversalSegLib.cli.batch_figures`; the manifest: :mod:`~UniversalSegLib.cli.manifest`; ranks:
:mod:`~UniversalSegLib.cli.distributed`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from UniversalSegLib.cli.batch_figures import (
    SEGMENT_STAGES,
    STAGE_PREPROCESS,
    STAGE_READ,
    STAGE_SEGMENT,
    STAGE_WRITE,
    CtFigures,
    speed_text,
)
from UniversalSegLib.cli.batch_inputs import (
    OUTPUT_FORMATS,
    BatchItem,
    collect_inputs,
    is_batch_request,
    plan_outputs,
)
from UniversalSegLib.cli.batch_loading import CtLoader, CtLoadError, LoadedCt
from UniversalSegLib.cli.distributed import RankInfo, barrier, gather_counts, process_group
from UniversalSegLib.cli.exit_codes import CancelledRun, CliError, ExitCode, fail_with, is_cancellation
from UniversalSegLib.cli.manifest import STATUS_FAILED, STATUS_OK, Manifest, ManifestEntry, options_digest
from UniversalSegLib.cli.prefetch import Prefetched, Prefetcher
from UniversalSegLib.cli.progress_output import ProgressPrinter, default_mode
from UniversalSegLib.cli.writable import prove_writable

logger = logging.getLogger("UniversalSegLib.cli")

DEFAULT_OUTPUT_FORMAT = "seg.nrrd"


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--input-list`` and ``--output-format`` of ``universalseg segment``."""
    parser.add_argument(
        "--input-list",
        metavar="FILE",
        help="batch: read input paths from FILE (one per line, # comments; relative paths are relative to "
        "FILE's folder)",
    )
    parser.add_argument(
        "--output-format",
        choices=OUTPUT_FORMATS,
        help=f"batch: extension of each output in the OUTPUT folder (default: {DEFAULT_OUTPUT_FORMAT})",
    )


def is_batch(args: argparse.Namespace) -> bool:
    """Whether the command line asks for a batch (see :func:`batch_inputs.is_batch_request`)."""
    return is_batch_request(list(args.input), args.input_list, args.output_format)


@dataclass
class BatchCounts:
    """What one rank did: inputs per outcome, windows run, and milliseconds from its first read to its last
    write (model loading excluded)."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    windows: int = 0
    milliseconds: int = 0

    def as_list(self) -> list[int]:
        return [self.done, self.skipped, self.failed, self.windows, self.milliseconds]


def run_batch(args: argparse.Namespace) -> int:
    """Validate, shard, segment this rank's inputs, exchange the counts; returns the exit code."""
    from UniversalSegLib.cli.cancel import cancel_on_signals

    world = RankInfo.from_environment()
    folder = _output_folder(args)
    items = plan_outputs(
        collect_inputs(list(args.input), args.input_list),
        folder,
        args.output_format or DEFAULT_OUTPUT_FORMAT,
    )
    _check_folder(folder, items)
    mine = world.shard(items)
    settings = _BatchSettings.from_args(args, world, len(mine))
    printer = ProgressPrinter(args.progress or ("none" if world.rank else default_mode(None)))
    with process_group(world):
        try:
            with cancel_on_signals() as cancel:
                counts = _RankRun(settings, world, mine, folder, printer, cancel).run()
        except CancelledRun:
            logger.warning(
                "Cancelled: the CT in progress left no output; finished CTs are kept and recorded in the "
                "manifest. Run the same command again to continue."
            )
            return ExitCode.CANCELLED
        finally:
            printer.close()
        every_rank = gather_counts(world, counts.as_list())
    return _summarize(world, every_rank, len(items), folder)


def _output_folder(args: argparse.Namespace) -> Path:
    from UniversalSegLib.io.atomic import file_extension

    folder = Path(args.output).expanduser().absolute()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"-o {folder} is a file; a batch writes into a folder: give one", ExitCode.OUTPUT)
    if not folder.exists() and file_extension(folder) in tuple(f".{name}" for name in OUTPUT_FORMATS):
        raise CliError(
            f"-o {folder.name} looks like a file name; a batch writes one file per CT into a folder: give a "
            "folder and pick the files' format with --output-format",
            ExitCode.USAGE,
        )
    for option in ("masks_dir", "statistics"):
        if getattr(args, option, None):
            flag = "--" + option.replace("_", "-")
            raise CliError(
                f"{flag} works with one CT_INPUT; run the CTs of a batch one by one", ExitCode.USAGE
            )
    return folder


def _check_folder(folder: Path, items: list[BatchItem]) -> None:
    """The output folder is no input folder and can be written (it is created if missing)."""
    parents = {item.input.parent for item in items}
    if folder in parents:
        raise CliError(
            f"-o {folder} holds input CTs; write the outputs into another folder (a re-run would take "
            "them for inputs)",
            ExitCode.USAGE,
        )
    try:  # the folder will hold the outputs and the manifest; every rank may create it at once
        folder.mkdir(parents=True, exist_ok=True)
        prove_writable(folder)
    except OSError as error:
        raise CliError(
            f"cannot write into {folder} ({error.strerror or error}); choose a folder you can write to",
            ExitCode.OUTPUT,
        ) from error


@dataclass
class _BatchSettings:
    """The options every CT of the batch runs with."""

    classes: list[int]
    options: Any  # InferenceOptions
    model_name: str
    backbone: str | None
    weights: Path | None
    output_format: str
    overwrite: bool
    accept_license: bool
    feature_cache: bool

    @classmethod
    def from_args(cls, args: argparse.Namespace, world: RankInfo, inputs: int) -> _BatchSettings:
        """The settings for this rank's ``inputs`` CTs (``--compile auto`` compiles for long batches)."""
        from UniversalSegLib.cli.run_request import options_from_args, select_classes
        from UniversalSegLib.inference.device import resolve_device
        from UniversalSegLib.inference.errors import InferenceError

        classes = select_classes(args.classes, args.preset)
        options = options_from_args(args, inputs)
        options.device = world.device(options.device)
        with fail_with(ExitCode.USAGE, "invalid option", (InferenceError,)):
            resolve_device(options.device)
        weights = Path(args.weights).expanduser() if args.weights else None
        return cls(
            classes=classes,
            options=options,
            model_name=args.model or "swinunetr",
            backbone=args.model or (None if weights else "swinunetr"),
            weights=weights,
            output_format=args.output_format or DEFAULT_OUTPUT_FORMAT,
            overwrite=args.overwrite,
            accept_license=args.accept_license,
            feature_cache=bool(args.feature_cache),  # a batch keeps no features unless asked
        )

    def result_options(self, weights_path: Path) -> dict[str, Any]:
        """Everything that changes an output (what the manifest compares before skipping an input)."""
        from UniversalSegLib.inference.device import resolve_device

        options = dataclasses.asdict(self.options)
        for ignored in ("device", "threads"):
            options.pop(ignored, None)
        status = weights_path.stat()
        return {
            "classes": self.classes,
            "model": self.backbone,  # None: the backbone the checkpoint holds (its identity is below)
            "weights": {
                "path": str(weights_path.absolute()),
                "bytes": status.st_size,
                "mtime_ns": status.st_mtime_ns,
            },
            "inference": options,
            "device": resolve_device(self.options.device).type,
            "format": self.output_format,
        }


class _RankRun:
    """This rank's share of the batch."""

    def __init__(
        self,
        settings: _BatchSettings,
        world: RankInfo,
        items: list[BatchItem],
        folder: Path,
        printer: ProgressPrinter,
        cancel: threading.Event,
    ) -> None:
        self.settings = settings
        self.world = world
        self.items = items  # this rank's share
        self.printer = printer
        self.cancel = cancel
        self.manifest = Manifest(folder, world.rank)
        self.counts = BatchCounts()
        self.options: dict[str, Any] = {}
        self.digest = ""
        self.identities: dict[Path, dict[str, int]] = {}
        self.where = f"rank {world.rank}/{world.world_size}: " if world.distributed else ""

    def run(self) -> BatchCounts:
        weights_path = self._weights_path()
        self.options = self.settings.result_options(weights_path)
        self.digest = options_digest(self.options)
        todo = [item for item in self.items if self._needs_run(item)]
        if self.counts.skipped:
            logger.info(
                "%sSkipping %d of %d inputs finished by an earlier run with the same options (manifest in "
                "%s; --overwrite does them again)",
                self.where,
                self.counts.skipped,
                len(self.items),
                self.manifest.path.parent,
            )
        if not todo:
            return self.counts
        model = self._load_model(weights_path)
        feature_cache = None
        if self.settings.feature_cache:
            from UniversalSegLib.inference.feature_cache import FeatureCache

            feature_cache = FeatureCache()
        from UniversalSegLib.inference.preprocessing_choice import choose_preprocessing

        # segment() chooses the same settings for every CT; the prefetch thread preprocesses with them
        loader = CtLoader(choose_preprocessing(model, self.settings.options).settings, self.cancel)
        start = time.perf_counter()
        try:
            with Prefetcher(todo, loader, self.cancel) as prefetcher:
                waiting = time.perf_counter()
                for number, loaded in enumerate(prefetcher, 1):
                    waited = time.perf_counter() - waiting
                    self._segment_one(loaded, model, feature_cache, number, len(todo), waited)
                    loaded.value = None  # the CT leaves memory before the next one is taken
                    waiting = time.perf_counter()
        finally:
            self.counts.milliseconds = round((time.perf_counter() - start) * 1000)
        if self.cancel.is_set():
            raise CancelledRun("cancelled")
        return self.counts

    def _weights_path(self) -> Path:
        settings = self.settings
        if settings.weights is not None:
            if not settings.weights.is_file():
                raise CliError(f"weights file {settings.weights} does not exist", ExitCode.WEIGHTS)
            return settings.weights
        from UniversalSegLib.cli.downloads import fetch
        from UniversalSegLib.weights.manager import WeightsManager

        if self.world.rank != 0:
            barrier(self.world)  # rank 0 downloads first; the others then find the file in the cache
        path = fetch(
            WeightsManager(), settings.model_name, settings.accept_license, self.printer, self.cancel
        )
        if self.world.rank == 0:
            barrier(self.world)
        return path

    def _needs_run(self, item: BatchItem) -> bool:
        """Count ``item`` as skipped or failed when it needs no run; True when it must be segmented."""
        try:
            identity = self.identities[item.input] = _identity(item.input)
        except OSError as exc:
            self._fail(item, f"cannot read input {item.input}: {exc.strerror or exc}", 0.0, STAGE_READ)
            return False
        if self.settings.overwrite:
            return True
        if self.manifest.is_done(item.input, identity, self.digest, item.output):
            self.counts.skipped += 1
            return False
        if item.output.exists():
            self._fail(
                item,
                f"output {item.output} exists but is not from a finished run of this input with these "
                "options; pass --overwrite to replace it",
                0.0,
                STAGE_WRITE,
            )
            return False
        return True

    def _load_model(self, weights_path: Path):
        from UniversalSegLib.inference.lean_import import import_monai_lean

        import_monai_lean()  # less memory and a faster start; this process only segments
        logger.info("%sLoading model %s (once for the batch)", self.where, weights_path.name)
        with fail_with(ExitCode.WEIGHTS, f"cannot load weights {weights_path}"):
            from UniversalSegLib.weights.checkpoint import load_model

            return load_model(weights_path, backbone=self.settings.backbone)

    def _segment_one(
        self,
        loaded: Prefetched[BatchItem, LoadedCt],
        model,
        feature_cache,
        number: int,
        total: int,
        waited: float,
    ) -> None:
        from UniversalSegLib.inference import segment
        from UniversalSegLib.progress import ProgressReporter

        item = loaded.item
        figures = CtFigures(waited=waited)
        start = time.perf_counter()
        reporter = ProgressReporter(callback=self.printer)
        position = f"[{number}/{total}]"
        logger.info("%s%s segmenting %s", self.where, position, item.input)
        if self.printer.mode == "json":
            reporter("batch", number - 1, total, str(item.input))
        stage = STAGE_READ
        try:
            if isinstance(loaded.error, CtLoadError):
                figures.add(loaded.error.seconds)
                _warn_intensity(self.where, item, loaded.error.warning)
                stage = loaded.error.stage
                raise loaded.error.__cause__ or loaded.error
            if loaded.error is not None:
                raise loaded.error
            ct = loaded.value
            figures.add(ct.seconds)
            _warn_intensity(self.where, item, ct.warning)
            stage = STAGE_SEGMENT
            result = segment(
                ct.image, model, self.settings.classes, self.settings.options, reporter, self.cancel,
                feature_cache=feature_cache, preprocessed=ct.preprocessed,
            )  # fmt: skip
            figures.add(result.timings, SEGMENT_STAGES)
            figures.windows = int(result.windows)
            stage = STAGE_WRITE
            written = time.perf_counter()
            _write(result.masks, item.output, self.settings.overwrite, self.cancel)
            figures.add({STAGE_WRITE: time.perf_counter() - written})
        except CancelledRun:
            raise
        except Exception as exc:  # noqa: BLE001 - one CT's failure is reported; the batch goes on
            if is_cancellation(exc):
                raise CancelledRun(str(exc) or "cancelled") from exc
            logger.debug("details", exc_info=True)
            seconds = loaded.seconds + time.perf_counter() - start
            self._fail(item, _describe(stage, item, exc), seconds, stage, figures)
            return
        seconds = loaded.seconds + time.perf_counter() - start
        logger.info(
            "%s%s wrote %s (%d windows, %.1f windows/s%s; %.1f s: %s; waited %.1f s for read and preprocess)",
            self.where,
            position,
            item.output,
            figures.windows,
            figures.windows_per_second,
            ", image features reused" if result.reused_features else "",
            seconds,
            figures.stage_text(),
            figures.waited,
        )
        self.counts.done += 1
        self.counts.windows += figures.windows
        self._record(item, STATUS_OK, "", seconds, figures=figures)

    def _fail(
        self, item: BatchItem, message: str, seconds: float, stage: str, figures: CtFigures | None = None
    ) -> None:
        logger.error("%sfailed: %s", self.where, message)
        self.counts.failed += 1
        self._record(item, STATUS_FAILED, message, seconds, stage, figures)

    def _record(
        self,
        item: BatchItem,
        status: str,
        error: str,
        seconds: float,
        stage: str = "",
        figures: CtFigures | None = None,
    ) -> None:
        self.manifest.append(
            ManifestEntry(
                input=str(item.input),
                identity=self.identities.get(item.input),
                options_digest=self.digest,
                output=str(item.output),
                status=status,
                seconds=round(seconds, 3),
                error=error,
                rank=self.world.rank,
                options=self.options,
                stage=stage,
                **(figures or CtFigures()).manifest_fields(),
            )
        )


def _identity(path: Path) -> dict[str, int]:
    from UniversalSegLib.cli.manifest import input_identity

    if not path.exists():
        raise FileNotFoundError(2, "it does not exist", str(path))
    return input_identity(path)


def _warn_intensity(where: str, item: BatchItem, warning: str | None) -> None:
    if warning:
        logger.warning("%s%s: %s", where, item.input.name, warning)


def _write(masks: dict, output: Path, overwrite: bool, cancel: threading.Event) -> None:
    """Write ``output`` atomically in the format its name says; removed again when cancelled meanwhile."""
    from UniversalSegLib.io import write_labelmap, write_segmentation_nrrd

    writer = write_segmentation_nrrd if output.name.lower().endswith(".seg.nrrd") else write_labelmap
    written = writer(masks, output, overwrite=overwrite)
    if cancel.is_set():
        written.unlink(missing_ok=True)
        raise CancelledRun("cancelled while writing; the output was removed")


def _describe(stage: str, item: BatchItem, exc: Exception) -> str:
    """One line saying which input failed where, and why."""
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, CliError):
        return f"{item.input}: {reason}"
    what = {
        STAGE_READ: "cannot read input",
        STAGE_PREPROCESS: "cannot preprocess",
        STAGE_SEGMENT: "cannot segment",
        STAGE_WRITE: f"cannot write {item.output} for",
    }
    return f"{what[stage]} {item.input}: {reason}"


def _summarize(world: RankInfo, every_rank: list[list[int]], total: int, folder: Path) -> int:
    """Log ``N done, M skipped, K failed`` and the speed (rank 0: the whole batch, whose wall time is the
    slowest rank's); the same exit code on every rank."""
    done, skipped, failed, windows = (sum(counts[i] for counts in every_rank) for i in range(4))
    line = f"{done} done, {skipped} skipped, {failed} failed"
    if world.distributed and world.rank != 0:
        own = every_rank[world.rank]
        speed = speed_text(own[3], own[0], own[4])
        logger.info("Rank %d: %d done, %d skipped, %d failed%s", world.rank, *own[:3], speed and f"; {speed}")
    else:
        speed = speed_text(windows, done, max(counts[4] for counts in every_rank))
        ranks = f" on {world.world_size} ranks" if world.distributed else ""
        log = logger.error if failed else logger.info
        log("Batch of %d inputs%s: %s%s", total, ranks, line, speed and f"; {speed}")
        if failed:
            logger.error(
                "The errors are listed above and in %s; run the same command again to retry the failed ones",
                folder / "universalseg-manifest.rank*.jsonl",
            )
    return ExitCode.SOME_INPUTS_FAILED if failed else ExitCode.OK
