"""Atomic output files: write to a temporary file next to the target, then rename.

A reader never sees a half-written file, a failed write leaves nothing behind, and an existing
file is only replaced when the caller asks for it.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

#: Multi-part extensions that must stay intact on the temporary file (writers pick the format from them).
COMPOUND_EXTENSIONS: tuple[str, ...] = (".seg.nrrd", ".seg.nii.gz", ".nii.gz", ".tar.gz")


class OutputExistsError(FileExistsError):
    """The output path exists and overwriting was not requested."""


def file_extension(path: str | os.PathLike) -> str:
    """Return the lower-case extension of ``path``, keeping compound ones such as ``.nii.gz``."""
    name = Path(path).name.lower()
    for extension in COMPOUND_EXTENSIONS:
        if name.endswith(extension) and len(name) > len(extension):
            return extension
    return Path(name).suffix


def check_output_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Validate an output path before any work is done.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is false.
        IsADirectoryError: ``path`` is an existing folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"Output path {path} is a folder; give a file name.")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"Output file {path} already exists; pass --overwrite (overwrite=True) or choose another path."
        )
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it is renamed to ``path``.

    The temporary file lives in the same folder (so the rename is atomic) and has the same
    extension (so format-by-extension writers work). Missing parent folders are created.
    If the body raises, the temporary file is removed and ``path`` is left untouched.

    Raises:
        OutputExistsError: ``path`` exists (checked before and again at rename time) and
            ``overwrite`` is false.
    """
    path = check_output_path(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    extension = file_extension(path)
    stem = path.name[: len(path.name) - len(extension)] if extension else path.name
    temporary = path.with_name(f".{stem}.tmp-{uuid.uuid4().hex[:12]}{extension}")
    try:
        yield temporary
        if not temporary.is_file():
            raise RuntimeError(f"The writer did not create {temporary} for {path}.")
        _commit(temporary, path, overwrite)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _commit(temporary: Path, path: Path, overwrite: bool) -> None:
    """Move ``temporary`` to ``path``; without ``overwrite`` never replace a file that appeared meanwhile."""
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)  # fails if path exists, unlike rename
    except FileExistsError:
        raise OutputExistsError(
            f"Output file {path} already exists; pass --overwrite (overwrite=True) or choose another path."
        ) from None
    except OSError:  # file system without hard links
        check_output_path(path, overwrite=False)
        os.replace(temporary, path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_output(path, overwrite) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_output(path, overwrite) as temporary:
        temporary.write_text(text, encoding="utf-8", newline="")
    return Path(path)
