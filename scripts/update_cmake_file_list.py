"""Regenerate the file lists in UniversalSeg/CMakeLists.txt from what is on disk.

The lists between the ``# BEGIN GENERATED FILE LIST`` and ``# END GENERATED FILE LIST`` markers
are rewritten: the module's Python files and resources, and the bundled ``UniversalSegLib``
package (its Python files and data files). Run it after adding or removing files::

    python scripts/update_cmake_file_list.py          # rewrite the lists
    python scripts/update_cmake_file_list.py --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO_ROOT / "UniversalSeg"
LIBRARY_DIR = REPO_ROOT / "UniversalSegLib"
CMAKE_FILE = MODULE_DIR / "CMakeLists.txt"
BEGIN_MARKER = "# BEGIN GENERATED FILE LIST"
END_MARKER = "# END GENERATED FILE LIST"
#: Extensions of the data files that are shipped (everything else is ignored).
RESOURCE_SUFFIXES = (".ui", ".png", ".svg", ".jpg", ".csv", ".json", ".txt", ".yaml", ".yml", ".ctbl")
SKIPPED_PARTS = ("__pycache__",)
SKIPPED_NAMES = ("CMakeLists.txt",)


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if (
            not path.is_file()
            or path.name in SKIPPED_NAMES
            or any(part.startswith(".") or part in SKIPPED_PARTS for part in relative.parts)
        ):
            continue
        if path.suffix.lower() in suffixes:
            found.append(path)
    return sorted(found, key=lambda p: p.as_posix())


def file_lists(module_dir: Path = MODULE_DIR, library_dir: Path = LIBRARY_DIR) -> dict[str, list[str]]:
    """CMake variable -> paths (module files relative to the module, library files to the repo root)."""
    repo_root = library_dir.parent
    module_scripts = [p.relative_to(module_dir).as_posix() for p in _files(module_dir, (".py",))]
    module_resources = [p.relative_to(module_dir).as_posix() for p in _files(module_dir, RESOURCE_SUFFIXES)]
    library_scripts = [p.relative_to(repo_root).as_posix() for p in _files(library_dir, (".py",))]
    library_resources = [p.relative_to(repo_root).as_posix() for p in _files(library_dir, RESOURCE_SUFFIXES)]
    return {
        "MODULE_PYTHON_SCRIPTS": module_scripts,
        "MODULE_PYTHON_RESOURCES": module_resources,
        "UNIVERSALSEGLIB_PYTHON_SCRIPTS": library_scripts,
        "UNIVERSALSEGLIB_PYTHON_RESOURCES": library_resources,
    }


def generated_block(lists: dict[str, list[str]]) -> str:
    lines = [f"{BEGIN_MARKER} (scripts/update_cmake_file_list.py rewrites this block)"]
    for variable, paths in lists.items():
        lines.append(f"set({variable}")
        lines += [f"  {path}" for path in paths]
        lines.append("  )")
        lines.append("")
    lines.append(END_MARKER)
    return "\n".join(lines)


def updated_text(text: str, lists: dict[str, list[str]]) -> str:
    start = text.find(BEGIN_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise SystemExit(f"{CMAKE_FILE}: the markers {BEGIN_MARKER!r} and {END_MARKER!r} are missing.")
    return text[:start] + generated_block(lists) + text[end + len(END_MARKER) :]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when the lists are stale")
    args = parser.parse_args(argv)
    text = CMAKE_FILE.read_text(encoding="utf-8")
    new_text = updated_text(text, file_lists())
    if new_text == text:
        print(f"{CMAKE_FILE.relative_to(REPO_ROOT)} is up to date")
        return 0
    if args.check:
        print(f"{CMAKE_FILE.relative_to(REPO_ROOT)} is out of date: run scripts/update_cmake_file_list.py")
        return 1
    fd, tmp = tempfile.mkstemp(prefix=".CMakeLists-", dir=CMAKE_FILE.parent)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(new_text)
    os.replace(tmp, CMAKE_FILE)
    print(f"Updated {CMAKE_FILE.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
