"""Progress parsing, the process runner against a real subprocess, and the Segment/Cancel states."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from UniversalSegGui.process_runner import ProcessRunner  # noqa: E402
from UniversalSegGui.progress_view import format_duration, overall_percent, status_text  # noqa: E402
from UniversalSegGui.run_panel import RunController, RunPanel  # noqa: E402
from UniversalSegGui.run_state import RunState, RunStateMachine  # noqa: E402

from UniversalSegLib.progress import ProgressEvent, parse_progress_line  # noqa: E402

FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")
WAIT_MS = 15000


def engine_arguments(windows: int, sleep_seconds: float, exit_code: int = 0) -> list[str]:
    return [str(FAKE_ENGINE), str(windows), str(sleep_seconds), str(exit_code)]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); read its state where /proc exists.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_progress_lines_round_trip_and_format():
    event = ProgressEvent("inference", 12, 40, 30.0, 75.0, "")
    parsed = parse_progress_line(event.to_json_line() + "\n")
    assert parsed == event
    assert parse_progress_line("INFO loading model") is None
    assert parse_progress_line("UNIVERSALSEG_PROGRESS {not json") is None
    assert status_text(parsed) == "Segmenting (window 12/40) - about 1 min 15 s left"
    assert overall_percent(ProgressEvent("load", 1, 1)) == 5
    assert overall_percent(ProgressEvent("inference", 20, 40)) == 15 + 35
    assert overall_percent(ProgressEvent("done")) == 100
    assert format_duration(3725) == "1 h 2 min"


def test_state_machine_rejects_nonsense():
    machine = RunStateMachine()
    seen = []
    machine.listeners.append(seen.append)
    assert machine.button_text() == "Segment" and not machine.button_enabled(inputs_ready=False)
    machine.go(RunState.RUNNING)
    assert machine.button_text() == "Cancel" and machine.button_enabled(inputs_ready=False)
    with pytest.raises(RuntimeError, match="running to preparing"):
        machine.go(RunState.PREPARING)
    machine.go(RunState.CANCELLING)
    assert not machine.button_enabled(inputs_ready=True)
    machine.go(RunState.IDLE)
    assert seen == [RunState.RUNNING, RunState.CANCELLING, RunState.IDLE]


@pytest.mark.skipif(os.name != "posix", reason="process-group checks are POSIX")
def test_runner_reads_progress_and_cancel_kills_the_process(qtbot):
    runner = ProcessRunner(terminate_timeout_ms=2000)
    events, logs, results = [], [], []
    runner.progress_callbacks.append(events.append)
    runner.log_callbacks.append(logs.append)
    runner.finished_callbacks.append(results.append)
    runner.start(sys.executable, engine_arguments(windows=4, sleep_seconds=60))
    qtbot.waitUntil(lambda: "all windows done" in logs, timeout=WAIT_MS)
    assert [e.done for e in events if e.stage == "inference"] == [1, 2, 3, 4]
    assert events[-1].total == 4
    assert logs[0] == "engine starting"
    pid = runner.pid()
    assert os.getpgid(pid) == pid  # its own process group
    runner.cancel()
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    assert results[0].cancelled and not results[0].succeeded
    assert not runner.isRunning()
    qtbot.waitUntil(lambda: not process_exists(pid), timeout=WAIT_MS)


def test_runner_reports_exit_codes_and_start_failures(qtbot):
    runner = ProcessRunner()
    results = []
    runner.finished_callbacks.append(results.append)
    runner.start(sys.executable, engine_arguments(windows=1, sleep_seconds=0, exit_code=3))
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    assert results[0].exit_code == 3 and not results[0].succeeded and not results[0].cancelled
    assert results[0].log_tail[-1] == "all windows done"
    runner.start(str(Path(sys.executable).with_name("no-such-python")), [], new_process_group=False)
    qtbot.waitUntil(lambda: len(results) == 2, timeout=WAIT_MS)
    assert "Could not start" in results[1].error


@pytest.fixture()
def panel_and_controller(qtbot):
    panel = RunPanel()
    qtbot.addWidget(panel)
    runner = ProcessRunner(terminate_timeout_ms=2000)
    controller = RunController(panel, runner)
    return panel, controller, runner


def test_segment_button_turns_into_cancel_and_back(panel_and_controller, qtbot):
    panel, controller, runner = panel_and_controller
    assert panel.segmentButton.text() == "Segment" and not panel.segmentButton.isEnabled()
    controller.setInputsReady(True)
    assert panel.segmentButton.isEnabled()
    controller.segment_requested.append(
        lambda: controller.start(sys.executable, engine_arguments(windows=3, sleep_seconds=60))
    )
    panel.segmentButton.click()
    assert controller.state.state == RunState.RUNNING
    assert panel.segmentButton.text() == "Cancel" and panel.segmentButton.isEnabled()
    assert panel.progressBar.isVisible() or not panel.isVisible()
    qtbot.waitUntil(lambda: "window 3/3" in panel.statusLabel.text(), timeout=WAIT_MS)
    assert panel.progressBar.value() == overall_percent(ProgressEvent("inference", 3, 3))
    assert "engine starting" in panel.logEdit.toPlainText()
    pid = runner.pid()

    panel.segmentButton.click()  # Cancel
    assert panel.segmentButton.text() == "Cancelling..." and not panel.segmentButton.isEnabled()
    qtbot.waitUntil(lambda: controller.state.state == RunState.IDLE, timeout=WAIT_MS)
    assert panel.segmentButton.text() == "Segment" and panel.segmentButton.isEnabled()
    assert panel.statusLabel.text() == "Cancelled."
    if os.name == "posix":
        qtbot.waitUntil(lambda: not process_exists(pid), timeout=WAIT_MS)


def test_a_run_that_ends_shows_done_or_the_error(panel_and_controller, qtbot):
    panel, controller, runner = panel_and_controller
    controller.setInputsReady(True)
    finished = []
    controller.finished.append(finished.append)
    controller.start(sys.executable, engine_arguments(windows=2, sleep_seconds=0))
    qtbot.waitUntil(lambda: bool(finished), timeout=WAIT_MS)
    assert panel.statusLabel.text() == "Done." and panel.progressBar.value() == 100
    controller.start(sys.executable, engine_arguments(windows=1, sleep_seconds=0, exit_code=5))
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=WAIT_MS)
    assert "exit code 5" in panel.statusLabel.text()
    assert controller.state.state == RunState.IDLE and panel.segmentButton.text() == "Segment"


@pytest.mark.skipif(os.name != "posix", reason="process-group checks are POSIX")
def test_blocking_stop_kills_a_process_that_ignores_sigterm(qtbot):
    runner = ProcessRunner(terminate_timeout_ms=500)
    logs, results = [], []
    runner.log_callbacks.append(logs.append)
    runner.finished_callbacks.append(results.append)
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(60)"
    )
    runner.start(sys.executable, ["-c", code])
    qtbot.waitUntil(lambda: "ready" in logs, timeout=WAIT_MS)
    pid = runner.pid()
    assert runner.stop(timeout_ms=500)
    assert results and results[0].cancelled
    qtbot.waitUntil(lambda: not process_exists(pid), timeout=WAIT_MS)
