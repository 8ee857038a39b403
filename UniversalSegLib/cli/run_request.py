"""What ``universalseg segment`` runs, read from its arguments: the classes and the inference options.

Shared by the single-input path (:mod:`UniversalSegLib.cli.segment`) and batches
(:mod:`UniversalSegLib.cli.batch`).
"""

from __future__ import annotations

import argparse

from UniversalSegLib.cli.exit_codes import CliError, ExitCode, fail_with

#: ``--compile`` values.
COMPILE_CHOICES = ("auto", "on", "off")
#: ``--compile auto`` compiles for batches of at least this many CTs (per rank): Swin UNETR's first
#: compilation takes minutes, and later processes still trace the model again (seconds), so compiling
#: does not pay for a few CTs.
COMPILE_AUTO_MIN_INPUTS = 16


def compile_wanted(choice: str, speed: str, inputs: int) -> bool:
    """Whether ``--compile choice`` compiles the encoder for a run of ``inputs`` CTs at ``speed`` (the
    engine compiles on CUDA GPUs only)."""
    if choice == "auto":
        return speed != "faithful" and inputs >= COMPILE_AUTO_MIN_INPUTS
    return choice == "on"


def options_from_args(args: argparse.Namespace, inputs: int = 1):
    """The run's ``InferenceOptions`` from ``--speed`` and the options that override it, for a run of
    ``inputs`` CTs (exit code 2 when invalid)."""
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
            compile=compile_wanted(getattr(args, "compile", "auto"), args.speed, inputs),
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
