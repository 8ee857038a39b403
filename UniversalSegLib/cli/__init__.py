"""The ``universalseg`` command line (argparse); see :mod:`UniversalSegLib.cli.main` for exit codes."""

from __future__ import annotations


def main(argv=None) -> int:
    """Run ``universalseg`` with ``argv`` (``sys.argv[1:]`` when ``None``); returns the exit code."""
    from UniversalSegLib.cli.main import main as _main

    return _main(argv)


__all__ = ["main"]
