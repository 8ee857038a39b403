"""Shared download helpers for the CLI: license prompt, error mapping, progress hookup."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from UniversalSegLib.cli.exit_codes import CancelledRun, CliError, ExitCode
from UniversalSegLib.cli.progress_output import ProgressPrinter


def ask_license_if_needed(manager, name: str, accept_license: bool) -> None:
    """Record acceptance from the flag, or ask on an interactive terminal; otherwise leave it to the error."""
    if not manager.needs_license_acceptance(name):
        return
    if accept_license:
        manager.accept_license(name)
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return
    print(manager.license_notice(name), file=sys.stderr)
    try:
        answer = input("Do you accept these license terms? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() in ("y", "yes"):
        manager.accept_license(name)


def fetch(
    manager,
    name: str,
    accept_license: bool,
    printer: ProgressPrinter,
    cancel: threading.Event | None = None,
) -> Path:
    """Cached path of ``name``, downloading it when missing; weights errors become exit code 5."""
    from UniversalSegLib.weights.errors import DownloadCancelledError, WeightsError

    ask_license_if_needed(manager, name, accept_license)
    progress = False if printer.mode == "none" else printer
    try:
        return manager.get_weights_path(name, download=True, progress=progress, cancel=cancel)
    except DownloadCancelledError as exc:
        raise CancelledRun(str(exc)) from exc
    except WeightsError as exc:
        raise CliError(str(exc), ExitCode.WEIGHTS) from exc
    finally:
        printer.close()
