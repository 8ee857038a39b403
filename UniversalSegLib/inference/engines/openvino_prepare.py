"""Converting (and for int8 quantizing) the encoder in a child process, so that a cancel stops it at once.

``openvino.convert_model`` and ``nncf.quantize`` run for minutes in native code that never looks at our
cancel event: run in this process, a Ctrl+C waited for them to finish. The child process here is ended
within a second of the event being set instead. It writes into a staging folder; only a finished result
is moved into the cache (``.bin`` before ``.xml``, whose presence marks a complete model), so a cancelled
or failed run leaves nothing there and the next run simply converts again.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from queue import Empty, Queue

from ..errors import InferenceError, SegmentationCancelled
from .openvino_convert import ENCODER_FILE

logger = logging.getLogger(__name__)

#: Staging folders (``.<key>.<random>.partial``) older than this are left over from a killed process.
STALE_STAGING_S = 6 * 3600
_MESSAGE_PREFIX = "UNIVERSALSEG_PREPARE "
_POLL_S = 0.1
_TERMINATE_WAIT_S = 5.0


def prepare_encoder_files(
    model,  # noqa: ANN001 (a UniversalModel; torch is imported by the caller)
    roi: Sequence[int],
    stored: Path,
    int8_folder: str | None,
    cancel: threading.Event | None = None,
    status: Callable[[str], None] | None = None,
) -> Path:
    """Convert ``model``'s encoder (when ``stored/encoder.xml`` is missing) and quantize it to int8 (when
    ``int8_folder`` is given and missing) in a child process; returns the folder that holds the result.

    That is ``stored`` (or ``stored/int8_folder``), or a temporary folder, removed at exit, when the cache
    cannot be written (only the next run pays the conversion again).

    Raises:
        SegmentationCancelled: ``cancel`` was set (or the child was ended by SIGTERM); nothing was stored.
        InferenceError: the conversion or quantization failed (the message has the child's error).
    """
    import torch

    convert = not (stored / ENCODER_FILE).is_file()
    staging, in_cache = _staging_folder(stored)
    try:
        request = {
            "roi": [int(r) for r in roi],
            "staging": str(staging),
            "float_file": str((staging / "float" if convert else stored) / ENCODER_FILE),
            "model_file": str(staging / "model.pt") if convert else None,
            "quantize": int8_folder is not None,
            "sys_path": [entry for entry in sys.path if entry],
        }
        if convert:
            torch.save(model, request["model_file"])
        (staging / "request.json").write_text(json.dumps(request), encoding="utf-8")
        _run_child(staging, cancel, status)
        if convert:
            os.remove(request["model_file"])
        return _publish_all(staging, stored, int8_folder, convert, in_cache)
    finally:
        if staging.is_dir() and not _holds_result(staging):
            shutil.rmtree(staging, ignore_errors=True)


def _staging_folder(stored: Path) -> tuple[Path, bool]:
    """A new staging folder next to ``stored`` (``True``), or in the temporary folder when the cache
    cannot be written (``False``)."""
    try:
        stored.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(stored.parent)
        return Path(tempfile.mkdtemp(prefix=f".{stored.name}.", suffix=".partial", dir=stored.parent)), True
    except OSError as error:
        logger.warning(
            "cannot write the OpenVINO cache %s (%s); converting in a temporary folder", stored.parent, error
        )
        return Path(tempfile.mkdtemp(prefix="universalseg-openvino-")), False


def _remove_stale_staging(folder: Path) -> None:
    """Staging folders a killed process (SIGKILL, power loss) left behind."""
    now = time.time()
    for entry in folder.glob(".*.partial"):
        try:
            if now - entry.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(entry, ignore_errors=True)
        except OSError:
            continue


_KEPT: list[Path] = []


def _holds_result(staging: Path) -> bool:
    return staging in _KEPT


def _remove_kept() -> None:
    for folder in _KEPT:
        shutil.rmtree(folder, ignore_errors=True)


atexit.register(_remove_kept)


def _run_child(staging: Path, cancel: threading.Event | None, status: Callable[[str], None] | None) -> None:
    """Run the child on ``staging/request.json``; end it as soon as ``cancel`` is set."""
    library_root = str(Path(__file__).resolve().parents[3])  # the folder that holds UniversalSegLib/
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [library_root, environment.get("PYTHONPATH")]))
    error_log = staging / "child-stderr.txt"
    with error_log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(staging / "request.json")],
            stdin=subprocess.PIPE,  # closed when this process ends: the child then exits too
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=environment,
            creationflags=getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0),  # Windows: no console Ctrl+C
        )
    messages: Queue[dict] = Queue()
    reader = threading.Thread(target=_read_messages, args=(process.stdout, messages), daemon=True)
    reader.start()
    result = None
    try:
        while process.poll() is None:
            if cancel is not None and cancel.is_set():
                raise SegmentationCancelled("cancelled while preparing the OpenVINO model")
            result = _relay(messages, status, timeout=_POLL_S) or result
        reader.join(timeout=2.0)
        result = _relay(messages, status, timeout=0.0) or result
    finally:
        _end(process)
    if (cancel is not None and cancel.is_set()) or process.returncode == -signal.SIGTERM:  # run is stopping
        raise SegmentationCancelled("cancelled while preparing the OpenVINO model")
    if result is None or "error" in result or process.returncode != 0:
        detail = (result or {}).get("error") or _tail(error_log) or f"exit code {process.returncode}"
        raise InferenceError(f"preparing the model for the OpenVINO engine failed: {detail}")


def _read_messages(stream, messages: Queue[dict]) -> None:  # noqa: ANN001 (a binary pipe)
    """Queue the child's messages; other output (library warnings) is skipped. Ends with the pipe."""
    try:
        for line in stream:
            text = line.decode("utf-8", "replace").strip()
            if text.startswith(_MESSAGE_PREFIX):
                messages.put(json.loads(text[len(_MESSAGE_PREFIX) :]))
    except (OSError, ValueError):  # the pipe was closed after a cancel, or a garbled line
        return


def _relay(messages: Queue[dict], status: Callable[[str], None] | None, timeout: float) -> dict | None:
    """Pass status messages on; returns the final message (``done`` or ``error``) when there is one."""
    final = None
    while True:
        try:
            message = messages.get(timeout=timeout) if timeout else messages.get_nowait()
        except Empty:
            return final
        timeout = 0.0
        if "status" in message:
            (status or logger.info)(message["status"])
        else:
            final = message


def _end(process: subprocess.Popen) -> None:
    """Terminate the child if it still runs (then kill it), and close its pipes."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=_TERMINATE_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            stream.close()


def _tail(path: Path, characters: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-characters:].strip()
    except OSError:
        return ""


def _publish_all(staging: Path, stored: Path, int8_folder: str | None, convert: bool, in_cache: bool) -> Path:
    """Move the finished models into the cache; returns the folder of the one to compile."""
    try:
        if not in_cache:
            raise OSError("the cache folder cannot be written")
        if convert:
            _publish(staging / "float", stored)
        if int8_folder is not None:
            _publish(staging / "int8", stored / int8_folder)
    except OSError as error:
        logger.warning("could not store the OpenVINO model in %s: %s", stored, error)
        _KEPT.append(staging)
        return staging / ("int8" if int8_folder is not None else "float")
    return stored / int8_folder if int8_folder is not None else stored


def _publish(source: Path, destination: Path) -> None:
    """Move ``source/encoder.{bin,xml}`` into ``destination``: the whole folder when it is new, else the
    ``.bin`` and then the ``.xml`` (readers look for the ``.xml``)."""
    try:
        os.rename(source, destination)
        return
    except OSError:
        if not destination.is_dir():
            raise
    xml = source / ENCODER_FILE
    try:
        os.replace(xml.with_suffix(".bin"), destination / ENCODER_FILE.replace(".xml", ".bin"))
        os.replace(xml, destination / ENCODER_FILE)
    except OSError:
        if not (destination / ENCODER_FILE).is_file():  # else another process stored the same model
            raise


def _send(message: dict) -> None:
    sys.stdout.write(_MESSAGE_PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def _exit_with_parent() -> None:
    """End this process when the parent's end of stdin closes (the parent ended, even by SIGKILL)."""

    def watch() -> None:
        while os.read(sys.stdin.fileno(), 1024):  # unbuffered: no lock left held at interpreter shutdown
            pass
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _child_main(request_file: str) -> None:
    """Child process: convert and/or quantize as ``request_file`` asks, writing into its staging folder."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C goes to the parent, which ends this process
    _exit_with_parent()
    request = json.loads(Path(request_file).read_text(encoding="utf-8"))
    sys.path.extend(entry for entry in request["sys_path"] if entry not in sys.path)
    try:
        from .openvino_convert import convert_encoder, require_openvino, save_encoder

        ov = require_openvino()  # switches telemetry off before OpenVINO is imported
        staging = Path(request["staging"])
        roi = request["roi"]
        if request["model_file"]:
            import torch

            model = torch.load(request["model_file"], weights_only=False)  # written by our parent
            save_encoder(convert_encoder(model, roi, ov), staging / "float", ov)
            del model
        if request["quantize"]:
            from .openvino_quantize import quantize_encoder

            _send({"status": "quantizing the model to int8 (once per model, about 2 minutes)"})
            base = ov.Core().read_model(request["float_file"])
            save_encoder(quantize_encoder(base, roi), staging / "int8", ov)
    except Exception as error:  # noqa: BLE001 (reported to the parent, which raises it)
        traceback.print_exc()  # into the parent's error log
        _send({"error": f"{type(error).__name__}: {error}"})
        _exit(1)
    _send({"done": True})
    _exit(0)


def _exit(code: int) -> None:
    """Exit at once: the results are on disk and nothing else needs a tidy shutdown of torch and OpenVINO."""
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _child_main(sys.argv[1])
