"""``universalseg classes [--json]``: the 32 classes (and presets) the model segments."""

from __future__ import annotations

import argparse
import json

from UniversalSegLib.cli.exit_codes import ExitCode


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classes",
        help="list the 32 classes and the presets",
        description="List the classes (index, key, name, group) and presets accepted by --classes/--preset.",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of class objects")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from UniversalSegLib.catalog import CLASSES, PRESETS

    if args.json:
        print(json.dumps([_class_dict(info) for info in CLASSES], indent=2))
        return ExitCode.OK
    rows = [("INDEX", "KEY", "NAME", "GROUP")]
    rows += [(str(info.index), info.key, info.display_name, info.group) for info in CLASSES]
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    print("\nPresets (--preset NAME):")
    for name, keys in PRESETS.items():
        print(f"  {name}: {', '.join(keys)}")
    return ExitCode.OK


def _class_dict(info) -> dict:
    return {
        "index": info.index,
        "key": info.key,
        "official_name": info.official_name,
        "display_name": info.display_name,
        "group": info.group,
        "parent_keys": list(info.parent_keys),
        "color": list(info.color),
    }
