"""Prove that output folders can be written before a long run: create and remove a file in each."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PROBE_PREFIX = ".universalseg-write-test-"


def prove_writable(folder: Path, attempts: int = 3) -> None:
    """Create and remove a temporary file in ``folder``; leave the file system as it was.

    Missing folders are created for the test (as the writers would) and removed again afterwards.
    Several processes may probe the same folder at once (the ranks of a distributed batch): a folder
    that another process creates is left to it, and a folder that another process removes under us
    is probed again.

    Raises:
        OSError: a folder cannot be created, or a file cannot be created in it.
    """
    for attempt in range(attempts):
        try:
            _probe_once(folder.absolute())
            return
        except FileNotFoundError:
            if attempt == attempts - 1:
                raise


def _probe_once(folder: Path) -> None:
    missing: list[Path] = []
    current = folder
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:  # another process made it meanwhile: not ours to remove
                continue
            created.append(path)
        handle, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
        os.close(handle)
        os.unlink(name)
    finally:
        for path in reversed(created):
            with contextlib.suppress(OSError):  # another process may have written into it meanwhile
                path.rmdir()


def first_unwritable(targets: Iterable[Path]) -> tuple[Path, OSError] | None:
    """The first target whose folder fails :func:`prove_writable` and the error (one test per folder)."""
    tested: set[Path] = set()
    for target in targets:
        folder = target.absolute().parent
        if folder in tested:
            continue
        tested.add(folder)
        try:
            prove_writable(folder)
        except OSError as error:
            return target, error
    return None
