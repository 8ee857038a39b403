"""The ``universalseg`` command line: ``main(argv=None) -> int``.

Subcommands: ``segment``, ``classes``, ``weights``, ``demo`` (``universalseg COMMAND --help``).

Exit codes:
    0    success
    1    unexpected error (``--verbose`` shows the traceback)
    2    usage error or bad option value (argparse errors, unknown class, bad output extension)
    3    input image missing, unreadable or unusable
    4    output exists (pass ``--overwrite``) or cannot be written
    5    weights problem: download failed, checksum mismatch, license not accepted, bad checkpoint
    130  cancelled (Ctrl+C / SIGTERM); no partial output is left

Human-readable logs go to stderr; stdout carries results (and ``--progress json`` lines).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from UniversalSegLib.cli import classes, demo, segment, weights
from UniversalSegLib.cli.exit_codes import EXIT_CODES_HELP, CancelledRun, CliError, ExitCode, is_cancellation

logger = logging.getLogger("UniversalSegLib.cli")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with all subcommands."""
    from UniversalSegLib import __version__

    parser = argparse.ArgumentParser(
        prog="universalseg",
        description="Text-prompted CT organ and tumor segmentation with the CLIP-Driven Universal Model.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"universalseg {__version__}")
    add_logging_options(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (segment, classes, weights, demo):
        module.add_parser(subparsers)
    for subparser in _all_subparsers(parser):
        add_logging_options(subparser, default=argparse.SUPPRESS)  # set only when given: keeps the global one
    return parser


def add_logging_options(parser: argparse.ArgumentParser, default: object) -> None:
    """``-v/--verbose`` and ``-q/--quiet``, accepted before and after every subcommand."""
    parser.add_argument(
        "-v", "--verbose", action="store_true", default=default, help="debug logging and tracebacks"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=default, help="only warnings and errors on stderr"
    )


def _all_subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every subcommand parser below ``parser`` (nested ones too, e.g. ``weights import``), once each."""
    found: dict[int, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for subparser in action.choices.values():
                if id(subparser) not in found:
                    found[id(subparser)] = subparser
                    found.update((id(nested), nested) for nested in _all_subparsers(subparser))
    return list(found.values())


@contextlib.contextmanager
def logging_to_stderr(verbose: bool, quiet: bool) -> Iterator[None]:
    """Log the library's messages on stderr as ``[universalseg] message`` while the block runs.

    The previous logger configuration is restored afterwards (``main`` may run inside another program).
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    library_logger = logging.getLogger("UniversalSegLib")
    saved = (library_logger.handlers[:], library_logger.level, library_logger.propagate)
    library_logger.handlers[:] = [handler]
    library_logger.setLevel(level)
    library_logger.propagate = False
    try:
        yield
    finally:
        library_logger.handlers[:], library_logger.level, library_logger.propagate = saved


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        return f"[universalseg] {level}{record.getMessage()}" + (
            "\n" + self.formatException(record.exc_info) if record.exc_info else ""
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help/--version (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
    with logging_to_stderr(args.verbose, args.quiet):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.handler(args))
    except CliError as exc:
        logger.debug("details", exc_info=True)
        print(f"universalseg: error: {exc}", file=sys.stderr)
        return int(exc.code)
    except BrokenPipeError:  # e.g. `universalseg classes | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return ExitCode.UNEXPECTED
    except CancelledRun as exc:
        print(f"universalseg: cancelled ({exc}); no output written", file=sys.stderr)
        return ExitCode.CANCELLED
    except BaseException as exc:  # noqa: BLE001 (last line of defence: map to an exit code)
        if is_cancellation(exc):
            print("universalseg: cancelled; no output written", file=sys.stderr)
            return ExitCode.CANCELLED
        if isinstance(exc, SystemExit):
            raise
        logger.error("unexpected error: %s: %s", type(exc).__name__, exc, exc_info=args.verbose)
        if not args.verbose:
            print("universalseg: run again with --verbose for the full traceback", file=sys.stderr)
        return ExitCode.UNEXPECTED


if __name__ == "__main__":
    raise SystemExit(main())
