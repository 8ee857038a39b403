"""``universalseg demo``: download a public abdomen CT and the default weights, segment, show statistics."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from UniversalSegLib.cli.exit_codes import ExitCode
from UniversalSegLib.cli.progress_output import PROGRESS_MODES, ProgressPrinter, default_mode
from UniversalSegLib.cli.segment import add_speed_argument

logger = logging.getLogger("UniversalSegLib.cli")

SAMPLE_NAME = "sample_ct"
SEGMENTATION_NAME = "demo_segmentation.seg.nrrd"
LABELMAP_NAME = "demo_labelmap.nii.gz"
STATISTICS_NAME = "demo_statistics.csv"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="segment a public example CT (downloads it and the default weights)",
        description="Download the TotalSegmentator example abdomen CT (Apache-2.0) and the default Swin "
        f"UNETR weights (CC BY-NC-ND 4.0, accepted with --accept-license), segment all 32 classes, write "
        f"DIR/{SEGMENTATION_NAME}, DIR/{LABELMAP_NAME} and DIR/{STATISTICS_NAME}, and print the statistics. "
        "Offline: import the files by hand as the error message explains.",
    )
    parser.add_argument(
        "-o", "--output-dir", default="universalseg_demo", metavar="DIR", help="output folder"
    )
    parser.add_argument("--accept-license", action="store_true", help="accept the weights license")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier demo outputs")
    parser.add_argument("--device", default="auto", help="auto|cpu|cuda|cuda:N|mps (default: auto)")
    add_speed_argument(parser)
    parser.add_argument(
        "--progress", choices=PROGRESS_MODES, help="bar (default on a terminal), json or none"
    )
    parser.add_argument("--roi-size", type=int, default=96, help=argparse.SUPPRESS)
    parser.add_argument("--weights", metavar="FILE", help=argparse.SUPPRESS)  # tests: skip the download
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from UniversalSegLib.catalog import CLASSES
    from UniversalSegLib.cli.downloads import fetch
    from UniversalSegLib.cli.exit_codes import CliError, fail_with
    from UniversalSegLib.cli.segment import SegmentJob, check_paths, execute
    from UniversalSegLib.inference.errors import InferenceError
    from UniversalSegLib.inference.speed import options_for_speed
    from UniversalSegLib.weights.errors import UnknownWeightsError
    from UniversalSegLib.weights.manager import WeightsManager

    folder = Path(args.output_dir).expanduser()
    with fail_with(ExitCode.USAGE, "invalid option", (InferenceError,)):
        options = options_for_speed(args.speed, args.device, roi_size=args.roi_size)
    job = SegmentJob(
        input=Path(),
        outputs=[folder / SEGMENTATION_NAME, folder / LABELMAP_NAME],
        classes=[info.index for info in CLASSES],
        options=options,
        speed=args.speed,
        statistics=folder / STATISTICS_NAME,
        overwrite=args.overwrite,
        print_statistics=True,
        weights=Path(args.weights).expanduser() if args.weights else None,
    )
    check_paths(job, check_input=False)
    manager = WeightsManager()
    printer = ProgressPrinter(default_mode(args.progress))
    try:
        job.model_name = manager.default_model
        job.input = fetch(manager, SAMPLE_NAME, False, printer)
        if job.weights is None:
            job.weights = fetch(manager, job.model_name, args.accept_license, printer)
    except UnknownWeightsError as exc:
        raise CliError(str(exc), ExitCode.WEIGHTS) from exc
    logger.info("Demo CT: %s; weights: %s; outputs in %s", job.input, job.weights, folder)
    return execute(job, printer)
