"""One segmentation run in the background: export the volume, run the engine, import the result.

Non-blocking: it runs in the Qt event loop and reports through callback lists (the same as
:class:`~UniversalSegGui.process_runner.ProcessRunner`), so the panel and the Python console share it.
The import starts from the event loop after the "import" progress event, so the panel shows it first;
it loads the engine's layered ``.seg.nrrd`` with Slicer's storage node (one short read on the main
thread, then only metadata), and a cancel before it starts leaves the scene untouched.
A run that succeeds after the engine reported keeping (or reusing) image features is noted in
:attr:`SegmentationJob.feature_memory`, so that the time estimate of a re-query can say so.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine_command import SegmentOptions, engine_environment, python_executable, segment_arguments
from .feature_reuse import FeatureMemory, VolumeState, volume_state
from .process_runner import ProcessResult, ProcessRunner
from .qt_compat import qt

logger = logging.getLogger(__name__)
#: Pause between the "import" progress event and the import, so that the panel can show it first.
IMPORT_DELAY_MS = 50
#: Progress stage of the engine's "reused image features" / "storing image features" events.
FEATURES_STAGE = "features"

#: (input file, output file, options) -> (program, arguments); replaceable in tests.
CommandFactory = Callable[[Path, Path, SegmentOptions], tuple[str, Sequence[str]]]


def default_command(input_path: Path, output_path: Path, options: SegmentOptions) -> tuple[str, list[str]]:
    return python_executable(), segment_arguments(input_path, output_path, options)


@dataclass
class JobResult:
    """The end of a run: the segmentation node on success, else why not."""

    cancelled: bool = False
    error: str = ""
    exit_code: int | None = None
    segmentation_node: Any = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.segmentation_node is not None and not self.error and not self.cancelled


def export_volume(volume_node: Any, path: Path) -> Path:
    """Write the volume to ``path`` (.nrrd) with a storage node (works without the Slicer app)."""
    import slicer

    if volume_node is None or volume_node.GetImageData() is None:
        raise ValueError("Select an input volume that has image data.")
    if volume_node.GetParentTransformNode() is not None:
        logger.warning(
            "%s is transformed; the engine sees the volume without its transform", volume_node.GetName()
        )
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(False)  # faster; the file is temporary
    if not storage.WriteData(volume_node):
        raise RuntimeError(f"Could not write the input volume to {path}")
    return path


class SegmentationJob:
    """Export -> engine process -> import; one run at a time.

    Args:
        runner: the process runner (a new one when ``None``).
        command_factory: builds the engine's command line (:func:`default_command` when ``None``).
        feature_memory: where runs that kept image features are noted (a new one when ``None``).
    """

    def __init__(
        self,
        runner: ProcessRunner | None = None,
        command_factory: CommandFactory | None = None,
        feature_memory: FeatureMemory | None = None,
    ) -> None:
        self.runner = runner or ProcessRunner()
        self.command_factory = command_factory or default_command
        self.feature_memory = feature_memory or FeatureMemory()
        self.progress_callbacks: list[Callable[[Any], None]] = []
        self.log_callbacks: list[Callable[[str], None]] = []
        self.finished_callbacks: list[Callable[[JobResult], None]] = []
        self.runner.progress_callbacks.append(self._forward_progress)
        self.runner.log_callbacks.append(self._forward_log)
        self.runner.finished_callbacks.append(self._on_process_finished)
        self._volume_node: Any = None
        self._output_node: Any = None
        self._show_3d = False
        self._temp_dir: Path | None = None
        self._pending_import: JobResult | None = None
        self._import_timer: Any = None
        self._run_features: tuple[VolumeState | None, SegmentOptions] | None = None
        self._features_kept = False
        self.last_result: JobResult | None = None

    def isRunning(self) -> bool:
        return self._temp_dir is not None

    def start(
        self, volume_node: Any, options: SegmentOptions, output_node: Any = None, show3D: bool = False
    ) -> None:
        """Export the volume and start the engine; returns at once."""
        if self.isRunning():
            raise RuntimeError("A segmentation is already running.")
        self._temp_dir = Path(tempfile.mkdtemp(prefix="UniversalSeg-"))
        try:
            self._run_features, self._features_kept = (volume_state(volume_node), options), False
            input_path = export_volume(volume_node, self._temp_dir / "input.nrrd")
            output_path = self._temp_dir / "result.seg.nrrd"
            program, arguments = self.command_factory(input_path, output_path, options)
            self._volume_node, self._output_node, self._show_3d = volume_node, output_node, show3D
            self._output_path = output_path
            self.runner.start(program, list(arguments), environment=engine_environment())
        except Exception:
            self._cleanup()
            raise

    def cancel(self) -> None:
        """Stop the engine; once it has finished, skip the import that has not started yet."""
        if self._pending_import is not None:
            self._pending_import.cancelled = True
            self._run_pending_import()
            return
        self.runner.cancel()

    def stop(self, timeout_ms: int = 5000) -> bool:
        """Cancel, wait for the process to be gone (killed after ``timeout_ms``), skip a pending import."""
        stopped = self.runner.stop(timeout_ms)
        if self._pending_import is not None:
            self.cancel()
        return stopped

    def wait(self, timeout_ms: int = -1) -> JobResult | None:
        """Block until the run ends (Python console use); returns the result."""
        if self.isRunning():
            self.runner.waitForFinished(timeout_ms)
        if self._pending_import is not None:
            self._run_pending_import()
        return self.last_result

    # ------------------------------------------------------------------------------------ private
    def _forward_progress(self, event: Any) -> None:
        if event.stage == FEATURES_STAGE:
            self._features_kept = True
        for callback in list(self.progress_callbacks):
            callback(event)

    def _forward_log(self, line: str) -> None:
        for callback in list(self.log_callbacks):
            callback(line)

    def _on_process_finished(self, process_result: ProcessResult) -> None:
        result = JobResult(
            cancelled=process_result.cancelled,
            error=process_result.error,
            exit_code=process_result.exit_code,
            log_tail=process_result.log_tail,
        )
        if process_result.succeeded:
            self._schedule_import(result)
            return
        if not result.cancelled and not result.error:
            last = process_result.log_tail[-1] if process_result.log_tail else ""
            result.error = f"The segmentation failed (exit code {process_result.exit_code}). {last}".strip()
        self._finish(result)

    def _schedule_import(self, result: JobResult) -> None:
        """Report the import stage now; import from the event loop, once the panel has shown it."""
        from UniversalSegLib.progress import ProgressEvent

        self._pending_import = result
        if self._import_timer is None:  # kept for the job's lifetime: it is stopped from its own slot
            self._import_timer = qt.QTimer()
            self._import_timer.setSingleShot(True)
            self._import_timer.timeout.connect(self._run_pending_import)
        self._import_timer.start(IMPORT_DELAY_MS)
        self._forward_progress(ProgressEvent("import", 0, 1, message=""))

    def _run_pending_import(self) -> None:
        result, self._pending_import = self._pending_import, None
        if self._import_timer is not None:
            self._import_timer.stop()
        if result is None:
            return
        if not result.cancelled:
            result = self._import_result(result)
        self._finish(result)

    def _finish(self, result: JobResult) -> None:
        self._cleanup()
        if result.succeeded and self._features_kept and self._run_features is not None:
            volume, options = self._run_features
            if options.feature_cache:
                self.feature_memory.remember(volume, options.feature_settings)
        self._run_features = None
        self.last_result = result
        for callback in list(self.finished_callbacks):
            callback(result)

    def _import_result(self, result: JobResult) -> JobResult:
        from .segmentation_import import import_segmentation_file

        try:
            node = import_segmentation_file(self._volume_node, self._output_path, self._output_node)
            if self._show_3d:
                node.CreateClosedSurfaceRepresentation()
            result.segmentation_node = node
        except Exception as error:
            logger.exception("Importing the segmentation failed")
            result.error = f"Could not import the result: {error}"
        return result

    def _cleanup(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
        self._temp_dir = None
