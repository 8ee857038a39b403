"""What ``universalseg segment`` runs, read from its arguments: the classes and the inference options.

Shared by the single-input path (:mod:`UniversalSegLib.cli.segment`) and batches
(:mod:`UniversalSegLib.cli.batch`).
"""

from __future__ import annotations

import argparse

from UniversalSegLib.cli.exit_codes import CliError, ExitCode, fail_with


def options_from_args(args: argparse.Namespace):
    """The run's ``InferenceOptions`` from ``--speed`` and the options that override it (exit code 2 when
    invalid)."""
    from UniversalSegLib.inference.errors import InferenceError
    from UniversalSegLib.inference.speed import options_for_speed

    with fail_with(ExitCode.USAGE, "invalid option", (InferenceError, ValueError, TypeError)):
        return options_for_speed(
            args.speed,
            args.device,
            overlap=args.overlap,
            precision=args.precision,
            sw_batch_size=args.sw_batch_size,
            engine=args.engine,
            blend=args.blend,
            postprocess=not args.no_postprocess,
            roi_size=args.roi_size,
            tf32=not args.strict_fp32,
        )


def select_classes(refs: list[str] | None, preset: str | None) -> list[int]:
    """Official indices for ``--classes`` / ``--preset`` (all 32 when neither); exit code 2 when unknown."""
    from UniversalSegLib.catalog import CLASSES, UnknownClassError, resolve_classes, resolve_preset

    try:
        if preset:
            return resolve_preset(preset)
        if refs:
            return resolve_classes(refs)
    except UnknownClassError as exc:
        raise CliError(f"{exc}\nSee `universalseg classes` for the list.", ExitCode.USAGE) from exc
    except KeyError as exc:
        raise CliError(str(exc.args[0]) if exc.args else str(exc), ExitCode.USAGE) from exc
    return [info.index for info in CLASSES]
