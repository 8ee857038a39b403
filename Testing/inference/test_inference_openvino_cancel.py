"""A cancel (the library's event, or Ctrl+C on the command line) stops the first OpenVINO conversion and
int8 quantization within seconds, leaves nothing in the cache, and the next run converts cleanly."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from UniversalSegLib.inference.engines import openvino_encoder
from UniversalSegLib.inference.engines.openvino_encoder import compiled_encoder, stored_encoder_path
from UniversalSegLib.inference.errors import SegmentationCancelled
from UniversalSegLib.model import UniversalModel
from UniversalSegLib.progress import parse_progress_line

pytestmark = pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino")

ROI = [32, 32, 32]
STOP_WITHIN_S = 10.0  # measured: about 0.5 s; generous for a loaded CI machine


def _staging_request(cache: Path, timeout: float = 300.0) -> Path:
    """The request file of the conversion child once it has been started (the child is then running)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = list(cache.glob(".*.partial/request.json"))
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no conversion started in {cache} within {timeout} s")


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of running processes that contain ``text`` (Linux; empty elsewhere)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


@pytest.mark.slow
def test_cancel_event_stops_quantization_at_once_and_stores_nothing(tmp_path) -> None:
    if importlib.util.find_spec("nncf") is None:
        pytest.skip("needs nncf")
    openvino_encoder._COMPILED.clear()  # a model compiled by another test must not answer from memory
    torch.manual_seed(20261130)  # weights (and so the cache key) of no other test's model
    model = UniversalModel("unet").eval()
    cache = tmp_path / "cache"
    cancel = threading.Event()
    started: dict[str, object] = {}

    def cancel_once_running() -> None:
        started["request"] = _staging_request(cache)
        time.sleep(1.0)
        started["at"] = time.perf_counter()
        cancel.set()

    watcher = threading.Thread(target=cancel_once_running, daemon=True)
    watcher.start()
    with pytest.raises(SegmentationCancelled):
        compiled_encoder(model, ROI, "int8", cache_dir=cache, cancel=cancel)
    stopped_after = time.perf_counter() - started["at"]
    assert stopped_after < STOP_WITHIN_S
    assert list(cache.iterdir()) == []  # no partial model, no staging folder
    if Path("/proc").is_dir():
        assert _processes_mentioning(str(started["request"])) == []  # the child is gone, not orphaned

    openvino_encoder._COMPILED.clear()
    assert compiled_encoder(model, ROI, "fp32", cache_dir=cache) is not None  # the next run converts
    stored = stored_encoder_path(model, ROI, cache)
    assert stored is not None and stored.with_suffix(".bin").is_file()
    assert not [path for path in cache.iterdir() if path.name.startswith(".")]


@pytest.mark.slow
def test_ctrl_c_on_the_command_line_stops_the_first_conversion(ct_dir, tmp_path) -> None:
    import SimpleITK as sitk  # noqa: N813

    from UniversalSegLib.testing import write_random_checkpoint

    source = ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    ct = tmp_path / "ct.nii.gz"
    sitk.WriteImage(sitk.ReadImage(str(source))[40:72, 30:62, 5:37], str(ct))
    weights = write_random_checkpoint(tmp_path / "unet.pth", backbone="unet", layout="official", seed=0)
    home = tmp_path / "home"
    environment = {**os.environ, "UNIVERSALSEG_HOME": str(home)}
    command = [sys.executable, "-m", "UniversalSegLib", "segment", str(ct), "--weights", str(weights)]
    command += ["--classes", "liver", "--device", "cpu", "--engine", "openvino", "--precision", "fp32"]
    command += ["--roi-size", "32", "--progress", "json", "--no-postprocess"]
    output = tmp_path / "out.nii.gz"

    process = subprocess.Popen(
        [*command, "-o", str(output)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        request = _staging_request(home / "openvino")
        time.sleep(0.5)
        pressed = time.perf_counter()
        os.killpg(process.pid, signal.SIGINT)  # Ctrl+C: the whole foreground group gets SIGINT
        code = process.wait(timeout=120)
        stopped_after = time.perf_counter() - pressed
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    out, err = process.communicate()
    stages = [event.stage for event in map(parse_progress_line, out.splitlines()) if event is not None]
    assert code == 130, err[-3000:]
    assert stopped_after < STOP_WITHIN_S
    assert "compile" in stages and "done" not in stages  # it was stopped during the conversion
    assert "cancelled" in err and not output.exists()
    assert list((home / "openvino").iterdir()) == []
    assert _processes_mentioning(str(request)) == []

    rerun = subprocess.run([*command, "-o", str(output)], capture_output=True, text=True, env=environment)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert output.is_file() and list((home / "openvino").glob("unet-32x32x32-*/encoder.xml"))
    assert not [path for path in (home / "openvino").iterdir() if path.name.startswith(".")]
