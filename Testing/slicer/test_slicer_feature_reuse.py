"""Asking for more classes of the same volume: the panel's re-query estimate, its option and its cache row.

Real MRML (slicer-core), real widgets (PySide6 offscreen) and real engine command lines; the engine is a
stand-in process that reports the image-feature events of ``universalseg segment`` and writes a result.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
sitk = pytest.importorskip("SimpleITK")
pytest.importorskip("pytestqt")

from slicer_scene_helpers import add_volume  # noqa: E402
from UniversalSegGui import feature_reuse, time_estimate  # noqa: E402
from UniversalSegGui.advanced_options import SETTINGS_REUSE_FEATURES_KEY, AdvancedOptions  # noqa: E402
from UniversalSegGui.engine_command import FeatureSettings, SegmentOptions, segment_arguments  # noqa: E402
from UniversalSegGui.estimate_text import estimate_text  # noqa: E402
from UniversalSegGui.feature_reuse import FeatureMemory, computed_class_count, requery_seconds  # noqa: E402
from UniversalSegGui.progress_view import format_duration, overall_percent, status_text  # noqa: E402
from UniversalSegGui.qt_compat import qt  # noqa: E402
from UniversalSegGui.run_panel import RunPanel  # noqa: E402
from UniversalSegGui.segmentation_job import SegmentationJob  # noqa: E402

from UniversalSegLib import cache_paths  # noqa: E402
from UniversalSegLib.progress import ProgressEvent  # noqa: E402

HERE = Path(__file__).resolve().parent
MODULE_DIR = HERE.parents[1] / "UniversalSeg"
FAKE_SEGMENT_ENGINE = HERE / "fake_segment_engine.py"
#: 40 x 48 x 36 voxels at 3 mm = 80 x 96 x 72 voxels at 1.5 mm: one 96-voxel window.
SHAPE_ZYX, SPACING = (36, 48, 40), (3.0, 3.0, 3.0)
#: A stand-in for ``universalseg segment``: a thresholded result, then the "features" event of a stored entry.
ENGINE_WITH_FEATURE_EVENTS = textwrap.dedent(
    """
    import runpy, sys
    from UniversalSegLib import cache_paths
    from UniversalSegLib.progress import ProgressEvent

    arguments = sys.argv[1:]  # what the panel passes after the Python executable
    sys.argv = [sys.argv[0], arguments[3], arguments[arguments.index("-o") + 1]]
    runpy.run_path(FAKE_SEGMENT_ENGINE)
    if "--no-feature-cache" not in arguments:
        message = "storing image features for later questions"
        print(ProgressEvent("features", message=message).to_json_line(), flush=True)
        entry = cache_paths.feature_cache_folder() / "entry"
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "entry.json").write_text("{}")
    """
)


@pytest.fixture()
def home(tmp_path, monkeypatch) -> Path:
    """A per-user folder of this test only (the engine process inherits it)."""
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture()
def volume():
    rng = np.random.default_rng(0)
    image = sitk.GetImageFromArray(rng.normal(80, 120, size=SHAPE_ZYX).astype(np.int16))
    image.SetSpacing(SPACING)
    scene = slicer.vtkMRMLScene()  # the node keeps no reference to its scene: this frame does
    yield add_volume(scene, image, "CT")


def make_job(tmp_path: Path, commands: list[list[str]]) -> SegmentationJob:
    """A job whose engine gets the panel's real arguments (recorded in ``commands``)."""
    engine = tmp_path / "feature_engine.py"
    engine.write_text(
        ENGINE_WITH_FEATURE_EVENTS.replace("FAKE_SEGMENT_ENGINE", repr(str(FAKE_SEGMENT_ENGINE))),
        encoding="utf-8",
    )

    def command(input_path, output_path, options):
        arguments = segment_arguments(input_path, output_path, options)
        commands.append(arguments)
        return sys.executable, [str(engine), *arguments]

    return SegmentationJob(command_factory=command)


def shown_estimate(module, logic, volume, classes, model="unet", device="cpu", speed="faithful") -> str:
    """What the panel's estimate line shows (the widget's own ``updateEstimate``, on a real label)."""
    label = qt.QLabel()
    node = types.SimpleNamespace(
        inputVolume=volume, model=model, device=device, speedMode=speed, selectedClasses=classes
    )
    widget = types.SimpleNamespace(
        _parameterNode=node, logic=logic, ui=types.SimpleNamespace(estimateLabel=label)
    )
    module.UniversalSegWidget.updateEstimate(widget)
    return label.text()


def test_a_second_run_of_the_same_volume_is_estimated_as_a_re_query(
    home, volume, tmp_path, qtbot, load_module_file, monkeypatch
):
    monkeypatch.setattr(time_estimate, "torch_installed", lambda: False)  # no GPU query (a stock Slicer)
    module = load_module_file()
    commands: list[list[str]] = []
    logic = module.UniversalSegLogic(
        job=make_job(tmp_path, commands),
        dependencyEnvironment=types.SimpleNamespace(testing_enabled=lambda: True),
    )
    full = shown_estimate(module, logic, volume, ["pancreas"])
    assert full.startswith("Estimated time on CPU: about ") and full.endswith("(1 windows).")

    events = []
    logic.job.progress_callbacks.append(events.append)
    logic.segment(volume, ["liver"], model="unet", device="cpu")
    assert "--no-feature-cache" not in commands[-1]
    assert [e.message for e in events if e.stage == "features"] == [
        "storing image features for later questions"
    ]

    # Same volume, settings unchanged, other classes: the heads only (portal vein also needs the pancreas).
    seconds = requery_seconds(1, 2)
    assert shown_estimate(module, logic, volume, ["portal_splenic_vein"]) == (
        f"About {format_duration(seconds)}: reuses the image features of the last run (1 windows)."
    )
    # Anything that changes the features gets the normal estimate.
    assert shown_estimate(module, logic, volume, ["pancreas"], model="swinunetr").startswith("Estimated")
    assert shown_estimate(module, logic, volume, ["pancreas"], speed="fast").startswith("Estimated")
    assert shown_estimate(module, logic, volume, ["pancreas"], device="auto").startswith("Estimated")
    other = add_volume(volume.GetScene(), sitk.GetImageFromArray(np.zeros(SHAPE_ZYX, np.int16)), "other")
    assert shown_estimate(module, logic, other, ["pancreas"]).startswith("Estimated")

    # The option off passes --no-feature-cache, and such a run changes nothing of what is remembered.
    logic.reuseFeatures = False
    assert shown_estimate(module, logic, volume, ["pancreas"]).startswith("Estimated")
    logic.segment(volume, ["spleen"], model="unet", device="cpu")
    assert "--no-feature-cache" in commands[-1]
    logic.reuseFeatures = True
    assert shown_estimate(module, logic, volume, ["spleen"]).startswith("About ")

    # Edited voxels (the volume changed since its features were computed): the normal estimate.
    slicer.util.arrayFromVolume(volume)[0, 0, 0] += 1
    slicer.util.arrayFromVolumeModified(volume)
    assert shown_estimate(module, logic, volume, ["spleen"]).startswith("Estimated")


def test_memory_follows_voxels_geometry_settings_and_the_cache_folder(home, volume):
    settings = FeatureSettings(model="unet", device="cpu")
    memory = FeatureMemory()
    assert not memory.fits(volume, settings)
    memory.remember(feature_reuse.volume_state(volume), settings)
    assert not memory.fits(volume, settings)  # the engine kept nothing (or the cache was cleared)
    (cache_paths.feature_cache_folder() / "entry").mkdir(parents=True)
    assert memory.fits(volume, settings)
    assert not memory.fits(volume, FeatureSettings(model="unet", device="cpu", weights="/tmp/mine.pth"))
    volume.SetSpacing(3.0, 3.0, 2.5)
    assert not memory.fits(volume, settings)
    volume.SetSpacing(*SPACING)
    assert memory.fits(volume, settings)
    volume.GetImageData().GetPointData().GetScalars().Modified()
    assert not memory.fits(volume, settings)
    memory.remember(feature_reuse.volume_state(volume), settings)
    assert memory.fits(volume, settings)
    memory.forget()
    assert not memory.fits(volume, settings)


def test_computed_classes_include_what_post_processing_needs():
    assert computed_class_count(["pancreas"]) == 1
    assert computed_class_count(["portal_splenic_vein"]) == 2  # and the pancreas
    assert computed_class_count(["kidney_tumor"]) == 3  # and both kidneys
    assert computed_class_count(["lung_left", "lung_right"]) == 2
    assert requery_seconds(80, 2) == pytest.approx(
        feature_reuse.REQUERY_FIXED_SECONDS + 160 * feature_reuse.REQUERY_SECONDS_PER_WINDOW_AND_CLASS
    )


def test_re_query_estimate_needs_neither_torch_nor_numpy():
    """Before the first run installs the engine's packages, the re-query estimate uses the stdlib only."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(MODULE_DIR)!r})
        from UniversalSegGui import time_estimate
        time_estimate.torch_installed = lambda: False  # as in a stock Slicer
        from UniversalSegGui.estimate_text import estimate_text
        text = estimate_text((512, 512, 100), (0.8, 0.8, 2.5), "swinunetr", "balanced", None, str, ["liver"])
        loaded = sorted({{"torch", "numpy", "monai", "SimpleITK"}} & set(sys.modules))
        print(text, loaded)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("About ") and "reuses the image features" in result.stdout
    assert result.stdout.strip().endswith("windows). []")


def test_estimate_text_of_a_re_query_on_cpu_and_gpu(home, monkeypatch):
    monkeypatch.setattr(time_estimate, "torch_installed", lambda: False)  # the window count without torch
    text = estimate_text((40, 48, 36), SPACING, "unet", "faithful", None, str, ["liver", "liver_tumor"])
    duration = format_duration(requery_seconds(1, 2))
    assert text == f"About {duration}: reuses the image features of the last run (1 windows)."
    on_gpu = estimate_text(
        (40, 48, 36), SPACING, "unet", "faithful", ("Small GPU", 4 * 1024**3), str, ["liver"]
    )
    assert on_gpu.startswith("About ")  # the backbone does not run: no memory warning
    assert estimate_text((40, 48, 36), SPACING, "unet", "faithful").startswith("Estimated time on CPU")


def test_feature_events_show_their_message_and_keep_the_progress_bar(qtbot):
    panel = RunPanel()
    qtbot.addWidget(panel)
    panel.showProgress(ProgressEvent("preprocess", 1, 1))
    before = panel.progressBar.value()
    reused = ProgressEvent("features", message="reused image features of an earlier run (80 windows)")
    panel.showProgress(reused)
    assert panel.progressBar.value() == before and overall_percent(reused) is None
    assert panel.statusLabel.text() == "Reused image features of an earlier run (80 windows)"
    assert status_text(ProgressEvent("features", message="storing image features for later questions")) == (
        "Storing image features for later questions"
    )


def test_option_is_remembered_across_sessions_and_turns_the_cache_off(qtbot, tmp_path):
    settings = qt.QSettings(str(tmp_path / "settings.ini"), qt.QSettings.IniFormat)
    options = AdvancedOptions(settings=settings)
    qtbot.addWidget(options)
    changes = []
    options.reuse_features_changed.append(changes.append)
    assert options.reuseFeatures()  # on by default
    options.reuseFeaturesCheckBox.click()
    assert changes == [False] and not options.reuseFeatures()
    settings.sync()
    again = AdvancedOptions(settings=qt.QSettings(str(tmp_path / "settings.ini"), qt.QSettings.IniFormat))
    qtbot.addWidget(again)
    assert not again.reuseFeatures()
    off = SegmentOptions(classes=("liver",), feature_cache=again.reuseFeatures())
    assert segment_arguments("in.nrrd", "out.seg.nrrd", off)[-3:] == [
        "--no-feature-cache",
        "--speed",
        "faithful",
    ]
    assert "--no-feature-cache" not in segment_arguments(
        "in.nrrd", "out.seg.nrrd", SegmentOptions(classes=("liver",))
    )
    assert settings.value(SETTINGS_REUSE_FEATURES_KEY) in (False, "false")


def test_no_feature_cache_is_an_option_of_the_cli():
    from UniversalSegLib.cli.main import build_parser

    off = SegmentOptions(classes=("liver",), model="unet", feature_cache=False)
    parsed = build_parser().parse_args(segment_arguments("in.nrrd", "out.seg.nrrd", off)[2:])
    on = build_parser().parse_args(
        segment_arguments("in.nrrd", "out.seg.nrrd", SegmentOptions(classes=("liver",)))[2:]
    )
    assert vars(parsed) != vars(on)  # the flag reaches the parser and changes what it parsed


def test_clear_cache_counts_and_removes_the_image_features(qtbot, tmp_path):
    from UniversalSegGui.weights_panel import WeightsPanel

    from UniversalSegLib.weights.manager import WeightsManager

    manager = WeightsManager(home=tmp_path / "cache")
    entry = cache_paths.feature_cache_folder(manager.home) / "entry"
    entry.mkdir(parents=True)
    (entry / "head_features.npy").write_bytes(b"\0" * 5000)
    cleared = []
    panel = WeightsPanel(manager=manager, confirm=lambda text: True)
    qtbot.addWidget(panel)
    panel.cache_cleared.append(lambda: cleared.append(True))
    assert panel.cacheLabel.text().startswith("5.0 kB (image features 5.0 kB)")
    panel.clearCache()
    assert not entry.exists() and cleared == [True]
    assert panel.cacheLabel.text() == f"empty in {manager.home}"
