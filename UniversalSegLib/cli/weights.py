"""``universalseg weights list|download|import|clear|path``: manage the weights cache."""

from __future__ import annotations

import argparse
import sys

from UniversalSegLib.cli.exit_codes import CliError, ExitCode
from UniversalSegLib.cli.progress_output import PROGRESS_MODES, ProgressPrinter, default_mode

DESCRIPTION = """Manage the cache of model weights and the demo CT.

The cache is in $UNIVERSALSEG_HOME/weights (default: the per-user data folder, which also holds the
converted OpenVINO models, the image features kept for re-queries and the measured speeds: `clear --all`
deletes all of them). The released weights
are CC BY-NC-ND 4.0 (non-commercial, no derivatives): accept the license once with --accept-license.
Offline computers: download the file elsewhere and `universalseg weights import FILE --name NAME`.
Mirrors: set UNIVERSALSEG_WEIGHTS_URL_<NAME> (full URL of one item, e.g. ..._SWINUNETR) or
UNIVERSALSEG_WEIGHTS_BASE_URL (the file name is appended)."""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "weights",
        help="list, download, import or clear model weights",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="list the catalog and what is cached")
    download = actions.add_parser("download", help="download NAME into the cache")
    download.add_argument("name", metavar="NAME")
    download.add_argument("--accept-license", action="store_true", help="accept the weights license")
    download.add_argument(
        "--progress", choices=PROGRESS_MODES, help="progress display (default: bar on a terminal)"
    )
    download.add_argument("--force", action="store_true", help="download again even if cached")
    import_ = actions.add_parser(
        "import",
        help="copy a local FILE into the cache as NAME, after checking that it is NAME (a checkpoint that "
        "loads into NAME's model, or a data file of the catalog's size and sha256); refused otherwise",
    )
    import_.add_argument("file", metavar="FILE")
    import_.add_argument("--name", required=True, help="catalog name, e.g. swinunetr or unet")
    clear = actions.add_parser(
        "clear",
        help="delete NAME (or every downloaded file) from the cache; --all also deletes the converted "
        "OpenVINO models (int8 included), the kept image features and the measured speeds",
    )
    clear.add_argument("name", metavar="NAME", nargs="?")
    clear.add_argument(
        "--all",
        action="store_true",
        help="delete everything cached (weights, converted models, image features, measured speeds); "
        "licenses stay accepted",
    )
    path = actions.add_parser("path", help="print the cached path of NAME (or the cache folder)")
    path.add_argument("name", metavar="NAME", nargs="?")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from UniversalSegLib.weights.errors import UnknownWeightsError, WeightsError
    from UniversalSegLib.weights.manager import WeightsManager

    manager = WeightsManager()
    try:
        return _ACTIONS[args.weights_command](manager, args)
    except UnknownWeightsError as exc:
        raise CliError(str(exc), ExitCode.USAGE) from exc
    except WeightsError as exc:
        raise CliError(str(exc), ExitCode.WEIGHTS) from exc


def _list(manager, args: argparse.Namespace) -> int:
    rows = [("NAME", "KIND", "CACHED", "SIZE", "LICENSE", "FILE")]
    for item in manager.list():
        size = f"{item.size / 1e6:.1f} MB" if item.size else "?"
        cached = "yes" if manager.is_available(item.name) else "no"
        rows.append(
            (item.name, item.kind, cached, size, item.license.id if item.license else "-", item.file_name)
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print(f"\nWeights folder: {manager.cache_dir}")
    print(f"All of UniversalSeg's files (clear --all): {manager.home}, {manager.usage().describe()}")
    return ExitCode.OK


def _download(manager, args: argparse.Namespace) -> int:
    from UniversalSegLib.cli.downloads import fetch

    manager.item(args.name)
    if args.force:
        manager.clear(args.name)
    path = fetch(manager, args.name, args.accept_license, ProgressPrinter(default_mode(args.progress)))
    print(path)
    return ExitCode.OK


def _import(manager, args: argparse.Namespace) -> int:
    print(manager.import_file(args.name, args.file))
    return ExitCode.OK


def _clear(manager, args: argparse.Namespace) -> int:
    from UniversalSegLib.weights.cache_usage import format_size

    if args.all and args.name is not None:
        raise CliError("give either NAME or --all, not both", ExitCode.USAGE)
    freed = manager.usage().total if args.all else None
    try:
        removed = manager.clear_all() if args.all else manager.clear(args.name)
    except OSError as exc:
        message = (
            f"could not delete {exc.filename}: {exc.strerror}; wait until no segmentation runs, then retry"
        )
        raise CliError(message, ExitCode.WEIGHTS) from exc
    for path in removed:
        print(f"deleted {path}")
    if not removed:
        print("nothing to delete", file=sys.stderr)
    elif freed is not None:
        print(f"freed {format_size(freed)} in {manager.home}")
    return ExitCode.OK


def _path(manager, args: argparse.Namespace) -> int:
    if args.name is None:
        print(manager.cache_dir)
        return ExitCode.OK
    print(manager.path(args.name))
    if not manager.is_available(args.name):
        print(
            f"{args.name} is not downloaded yet: `universalseg weights download {args.name}`", file=sys.stderr
        )
        return ExitCode.WEIGHTS
    return ExitCode.OK


_ACTIONS = {"list": _list, "download": _download, "import": _import, "clear": _clear, "path": _path}
