"""The write probe tolerates other processes probing the same folder (the ranks of a batch)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from UniversalSegLib.cli import writable
from UniversalSegLib.cli.writable import prove_writable


def test_a_missing_folder_is_created_for_the_probe_and_removed(tmp_path):
    prove_writable(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_another_process_creates_meanwhile_is_left_to_it(tmp_path, monkeypatch):
    target = tmp_path / "out"
    real_mkdir = Path.mkdir

    def mkdir_after_the_other_process(self, *args, **kwargs):
        if self == target:
            real_mkdir(self)  # the other rank wins the race ...
        return real_mkdir(self, *args, **kwargs)  # ... so ours raises FileExistsError

    monkeypatch.setattr(Path, "mkdir", mkdir_after_the_other_process)
    prove_writable(target)
    assert target.is_dir()  # not ours to remove: the other process will write into it


def test_a_folder_removed_under_the_probe_is_probed_again(tmp_path, monkeypatch):
    target = tmp_path / "out"
    real_mkstemp = tempfile.mkstemp
    calls = []

    def mkstemp_after_the_other_process_cleaned_up(*args, **kwargs):
        calls.append(kwargs["dir"])
        if len(calls) == 1:
            shutil.rmtree(target)  # the other rank's probe removes the folder it created
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(writable.tempfile, "mkstemp", mkstemp_after_the_other_process_cleaned_up)
    prove_writable(target)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_keeps_vanishing_reports_the_error(tmp_path, monkeypatch):
    def always_missing(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(writable.tempfile, "mkstemp", always_missing)
    with pytest.raises(FileNotFoundError):
        prove_writable(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
