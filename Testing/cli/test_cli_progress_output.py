"""Progress rendering modes and the interactive license prompt."""

from __future__ import annotations

import io
import logging

from UniversalSegLib.cli.downloads import ask_license_if_needed
from UniversalSegLib.cli.progress_output import ProgressPrinter, default_mode
from UniversalSegLib.progress import ProgressEvent, parse_progress_line
from UniversalSegLib.weights.manager import WeightsManager


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_mode_prints_one_parseable_line_per_event():
    stdout = io.StringIO()
    printer = ProgressPrinter("json", stdout=stdout)
    events = [ProgressEvent("inference", done, 4, 0.5 * done, None, "") for done in range(5)]
    for event in events:
        printer(event)
    printer.close()
    assert [parse_progress_line(line) for line in stdout.getvalue().splitlines()] == events


def test_none_mode_prints_nothing_and_bar_mode_uses_stderr():
    stdout, stderr = io.StringIO(), io.StringIO()
    for mode in ("none", "bar"):
        printer = ProgressPrinter(mode, stdout=stdout, stderr=stderr)
        printer(ProgressEvent("inference", 1, 2))
        printer.close()
    assert stdout.getvalue() == "" and "inference" in stderr.getvalue()


def test_default_mode_depends_on_terminal():
    assert default_mode(None, _Terminal()) == "bar"
    assert default_mode(None, io.StringIO()) == "log"
    assert default_mode("json", _Terminal()) == "json"


def test_log_mode_logs_stage_starts(caplog):
    printer = ProgressPrinter("log")
    with caplog.at_level(logging.INFO, logger="UniversalSegLib.cli"):
        printer(ProgressEvent("preprocess", 0, 1))
        printer(ProgressEvent("inference", 0, 10, message="windows"))
    assert "preprocess" in caplog.text and "inference: windows" in caplog.text


def test_license_prompt_on_terminal_records_acceptance(tmp_path, monkeypatch, capsys):
    manager = WeightsManager(home=tmp_path)
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("sys.stderr", _Terminal())
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))

    ask_license_if_needed(manager, "swinunetr", accept_license=False)
    assert manager.needs_license_acceptance("swinunetr")
    ask_license_if_needed(manager, "swinunetr", accept_license=False)
    assert not manager.needs_license_acceptance("unet")  # same license, accepted once
