"""A whole run in a slicer-core scene: export the volume, run an engine process, import the result."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")
pytest.importorskip("pytestqt")

from slicer_scene_helpers import add_small_segment, add_volume  # noqa: E402
from UniversalSegGui.engine_command import SegmentOptions, segment_arguments  # noqa: E402
from UniversalSegGui.segmentation_import import segment_mask  # noqa: E402
from UniversalSegGui.segmentation_job import SegmentationJob  # noqa: E402

HERE = Path(__file__).resolve().parent
FAKE_ENGINE = HERE / "fake_segment_engine.py"
WAIT_MS = 60000


@pytest.fixture()
def scene_and_volume(ct_dir):
    image = sitk.ReadImage(str(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"))
    scene = slicer.vtkMRMLScene()
    volume = add_volume(scene, image, "CT")
    return scene, volume, sitk.GetArrayFromImage(image)


def fake_engine_command(input_path, output_path, options):
    return sys.executable, [str(FAKE_ENGINE), str(input_path), str(output_path)]


def test_job_exports_runs_and_imports_with_overlaps(scene_and_volume, qtbot):
    scene, volume, voxels = scene_and_volume
    job = SegmentationJob(command_factory=fake_engine_command)
    events, results = [], []
    job.progress_callbacks.append(events.append)
    job.finished_callbacks.append(results.append)
    job.start(volume, SegmentOptions(classes=("liver", "liver_tumor")))
    assert job.isRunning()
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    result = results[0]
    assert result.succeeded, result.error + "\n".join(result.log_tail)
    assert [e.stage for e in events] == ["load", "write", "done", "import"]
    node = result.segmentation_node
    assert node.GetName() == "CT segmentation"
    # The exported file kept the geometry: thresholds of the original voxels come back on the same grid.
    np.testing.assert_array_equal(segment_mask(node, "liver", volume), voxels > 100)
    np.testing.assert_array_equal(segment_mask(node, "liver_tumor", volume), voxels > 300)
    assert not job.isRunning() and job._temp_dir is None


def truncating_engine_command(input_path, output_path, options):
    """The fake engine, then its result cut in half (a disk that filled up)."""
    code = (
        f"import runpy, sys; runpy.run_path({str(FAKE_ENGINE)!r}, run_name='__main__'); "
        "data = open(sys.argv[2], 'rb').read(); open(sys.argv[2], 'wb').write(data[: len(data) // 2])"
    )
    return sys.executable, ["-c", code, str(input_path), str(output_path)]


def chosen_output_node(scene):
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "Chosen")
    add_small_segment(node, "old", "Old segment")
    assert node.GetSegmentation().GetSegmentIDs() == ("old",)
    return node


def run_into_chosen_node(command_factory, volume, chosen, qtbot):
    """Run a job for liver and liver tumor with ``chosen`` as output; returns the job and its result."""
    job = SegmentationJob(command_factory=command_factory)
    results = []
    job.finished_callbacks.append(results.append)
    job.start(volume, SegmentOptions(classes=("liver", "liver_tumor")), output_node=chosen)
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    return job, results[0]


def test_job_imports_into_the_chosen_node(scene_and_volume, qtbot):
    scene, volume, voxels = scene_and_volume
    chosen = chosen_output_node(scene)
    _job, result = run_into_chosen_node(fake_engine_command, volume, chosen, qtbot)
    assert result.succeeded, result.error
    assert result.segmentation_node is chosen and chosen.GetName() == "Chosen"
    segmentation = chosen.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == [
        "liver",
        "liver_tumor",
    ]
    assert segmentation.GetNumberOfLayers() == 2  # the tumor overlaps the liver: one layer each
    np.testing.assert_array_equal(segment_mask(chosen, "liver", volume), voxels > 100)
    np.testing.assert_array_equal(segment_mask(chosen, "liver_tumor", volume), voxels > 300)
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1


def test_damaged_result_gives_a_clear_error_and_keeps_the_chosen_node(scene_and_volume, qtbot):
    scene, volume, _ = scene_and_volume
    chosen = chosen_output_node(scene)
    job, result = run_into_chosen_node(truncating_engine_command, volume, chosen, qtbot)
    assert not result.succeeded and result.segmentation_node is None
    assert "Could not import the result" in result.error and "incomplete" in result.error
    assert "Run the segmentation again" in result.error
    segmentation = chosen.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 1 and segmentation.GetSegment("old") is not None
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    assert job._temp_dir is None


def test_import_runs_from_the_event_loop_and_can_be_cancelled_before_it_starts(scene_and_volume, qtbot):
    from UniversalSegGui.qt_compat import qt

    scene, volume, voxels = scene_and_volume
    job = SegmentationJob(command_factory=fake_engine_command)
    seen, results = [], []

    def on_progress(event):
        if event.stage != "import":
            return
        # The panel gets the "import" event first; the scene changes only after the event loop ran.
        seen.append(("import event", scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")))
        qt.QTimer.singleShot(0, lambda: seen.append(("event loop", len(results))))

    job.progress_callbacks.append(on_progress)
    job.finished_callbacks.append(results.append)
    job.start(volume, SegmentOptions(classes=("liver",)))
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    assert results[0].succeeded, results[0].error
    assert seen == [("import event", 0), ("event loop", 0)]
    np.testing.assert_array_equal(segment_mask(results[0].segmentation_node, "liver", volume), voxels > 100)

    # Cancelling once the engine has finished but before the import started: nothing is imported.
    cancelling = SegmentationJob(command_factory=fake_engine_command)
    cancelled = []
    cancelling.progress_callbacks.append(lambda event: event.stage == "import" and cancelling.cancel())
    cancelling.finished_callbacks.append(cancelled.append)
    cancelling.start(volume, SegmentOptions(classes=("liver",)))
    qtbot.waitUntil(lambda: bool(cancelled), timeout=WAIT_MS)
    qtbot.wait(100)
    assert len(cancelled) == 1 and cancelled[0].cancelled and cancelled[0].segmentation_node is None
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    assert not cancelling.isRunning()


def test_failed_engine_leaves_the_scene_alone(scene_and_volume, qtbot):
    scene, volume, _ = scene_and_volume
    job = SegmentationJob(
        command_factory=lambda i, o, opt: (sys.executable, ["-c", "import sys; print('boom'); sys.exit(4)"])
    )
    results = []
    job.finished_callbacks.append(results.append)
    job.start(volume, SegmentOptions(classes=("liver",)))
    qtbot.waitUntil(lambda: bool(results), timeout=WAIT_MS)
    assert not results[0].succeeded and "exit code 4" in results[0].error and "boom" in results[0].error
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 0


def test_segment_arguments_are_accepted_by_the_cli_parser():
    from UniversalSegLib.cli.main import build_parser

    options = SegmentOptions(
        classes=("liver", "liver_tumor"),
        model="unet",
        device="cpu",
        speed="fast",
        weights="/tmp/w.pth",
        accept_license=True,
    )
    arguments = segment_arguments("in.nrrd", "out.seg.nrrd", options)
    assert arguments[:3] == ["-m", "UniversalSegLib", "segment"]
    parsed = build_parser().parse_args(arguments[2:])
    assert parsed.classes == ["liver", "liver_tumor"] and parsed.output == "out.seg.nrrd"
    assert parsed.model == "unet" and parsed.device == "cpu" and parsed.weights == "/tmp/w.pth"
    assert parsed.progress == "json" and parsed.accept_license and parsed.speed == "fast"
    with pytest.raises(ValueError, match="at least one class"):
        SegmentOptions(classes=())


def test_logic_segment_blocks_until_the_result_is_in_the_scene(scene_and_volume, qtbot, load_module_file):
    module = load_module_file()

    class TestingSlicer:
        def testing_enabled(self):
            return True

    scene, volume, voxels = scene_and_volume
    logic = module.UniversalSegLogic(
        job=SegmentationJob(command_factory=fake_engine_command), dependencyEnvironment=TestingSlicer()
    )
    node = logic.segment(volume, ["liver", "liver_tumor"], device="cpu")
    assert node.GetSegmentation().GetSegment("liver_tumor").GetName() == "Liver tumor"
    np.testing.assert_array_equal(segment_mask(node, "liver", volume), voxels > 100)
    assert not logic.isRunning()
    estimate = logic.estimateCpuTime(volume, "unet")
    # 122 x 101 x 30 voxels at 3 mm = 244 x 202 x 60 at 1.5 mm: 5 x 4 x 1 windows of 96 with step 48.
    assert estimate.windows == 5 * 4 * 1 and estimate.seconds == 20 * estimate.seconds_per_window

    failing = module.UniversalSegLogic(
        job=SegmentationJob(
            command_factory=lambda i, o, opt: (sys.executable, ["-c", "raise SystemExit(5)"])
        ),
        dependencyEnvironment=TestingSlicer(),
    )
    with pytest.raises(RuntimeError, match="exit code 5"):
        failing.segment(volume, ["liver"])


@pytest.mark.slow  # the real engine in a subprocess: about 20 s on 2 idle cores
def test_real_engine_with_a_random_checkpoint(ct_dir, qtbot, tmp_path):
    from UniversalSegGui.segmentation_job import default_command

    from UniversalSegLib.testing import write_random_checkpoint

    checkpoint = tmp_path / "unet_random.pth"
    write_random_checkpoint(checkpoint, backbone="unet", layout="official", seed=0)
    image = sitk.ReadImage(str(ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"))[40:60, 40:60, 5:25]
    scene = slicer.vtkMRMLScene()
    volume = add_volume(scene, image, "small CT")

    def small_windows(input_path, output_path, options):
        program, arguments = default_command(input_path, output_path, options)
        return program, [*arguments, "--roi-size", "32"]

    job = SegmentationJob(command_factory=small_windows)
    events = []
    job.progress_callbacks.append(events.append)
    job.start(
        volume,
        SegmentOptions(classes=("liver", "spleen"), model="unet", device="cpu", weights=str(checkpoint)),
    )
    result = job.wait(-1)
    assert result.succeeded, result.error + "\n".join(result.log_tail)
    assert {"inference", "write", "done", "import"} <= {event.stage for event in events}
    segmentation = result.segmentation_node.GetSegmentation()
    assert sorted(segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())) == [
        "liver",
        "spleen",
    ]
