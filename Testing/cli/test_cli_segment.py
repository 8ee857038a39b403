"""``universalseg segment`` end to end on a small real CT with a random-init checkpoint."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.catalog import resolve_classes
from UniversalSegLib.cli.main import main
from UniversalSegLib.progress import parse_progress_line

FAST = ["--roi-size", "32", "--overlap", "0", "--device", "cpu"]


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == pytest.approx(b.GetSpacing())
        and a.GetOrigin() == pytest.approx(b.GetOrigin())
        and a.GetDirection() == pytest.approx(b.GetDirection())
    )


def test_segment_end_to_end_with_cached_weights(small_ct, unet_checkpoint, tmp_path, capsys):
    """Import the checkpoint as the ``unet`` weights, then segment without --weights."""
    assert main(["weights", "import", str(unet_checkpoint), "--name", "unet"]) == 0
    capsys.readouterr()
    output = tmp_path / "out" / "labels.nii.gz"
    statistics = tmp_path / "stats.json"
    classes = ["liver", "spleen", "kidney_tumor"]

    code = main(
        ["segment", str(small_ct), "-o", str(output), "--model", "unet", "--classes", *classes]
        + [
            "--masks-dir",
            str(tmp_path / "masks"),
            "--statistics",
            str(statistics),
            "--progress",
            "json",
            *FAST,
        ]
    )

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    events = [parse_progress_line(line) for line in lines]
    assert lines and all(event is not None for event in events)
    stages = [event.stage for event in events]
    assert {"load", "inference", "write"} <= set(stages) and stages[-1] == "done"
    assert captured.err.count("Timings:") == 1 and captured.err.count("Estimated time") == 1
    estimates = [event for event in events if (event.message or "").startswith("Estimated time")]
    assert len(estimates) == 1  # for programs (the Slicer module) on stdout
    ct = sitk.ReadImage(str(small_ct))
    labels = sitk.ReadImage(str(output))
    assert _same_geometry(labels, ct)
    allowed = {0, *resolve_classes(classes)}
    assert set(sitk.GetArrayViewFromImage(labels).ravel().tolist()) <= allowed
    masks = sorted(path.name for path in (tmp_path / "masks").iterdir())
    assert len(masks) == 3 and all(name.endswith(".nii.gz") for name in masks)
    stats = json.loads(statistics.read_text())
    assert sorted(item["key"] for item in stats) == sorted(classes)


def test_segment_to_slicer_segmentation_with_weights_file(small_ct, unet_checkpoint, tmp_path, capsys):
    output = tmp_path / "seg.seg.nrrd"
    code = main(
        ["segment", str(small_ct), "-o", str(output), "--weights", str(unet_checkpoint), "--classes", "liver"]
        + ["--progress", "none", "--no-postprocess", *FAST]
    )
    assert code == 0, capsys.readouterr().err
    import slicerio

    segmentation = slicerio.read_segmentation(str(output))
    assert [segment["name"] for segment in segmentation["segments"]] == ["Liver"]


def test_estimate_and_each_timing_are_printed_once(small_ct, unet_checkpoint, tmp_path, capsys):
    """Default progress display off a terminal (log lines): no figure twice, no raw dict."""
    code = main(
        ["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--weights", str(unet_checkpoint)]
        + ["--classes", "liver", "--no-postprocess", *FAST]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("Estimated time") == 1
    timing_lines = [line for line in err.splitlines() if "timings" in line.lower()]
    assert len(timing_lines) == 1 and "{" not in err, err
    for stage in ("read", "load_model", "preprocess", "inference", "network", "write", "total"):
        assert len(re.findall(rf"\b{stage} \d+\.\d\d s\b", err)) == 1, stage


def test_sigterm_cancels_without_output(small_ct, unet_checkpoint, tmp_path):
    output = tmp_path / "cancelled.nii.gz"
    command = [sys.executable, "-m", "UniversalSegLib", "segment", str(small_ct), "-o", str(output)]
    command += [
        "--weights",
        str(unet_checkpoint),
        "--progress",
        "json",
        "--roi-size",
        "16",
        "--device",
        "cpu",
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
    )
    try:
        for line in process.stdout:
            event = parse_progress_line(line)
            if event is not None and event.stage in ("preprocess", "inference"):
                process.send_signal(signal.SIGTERM)
                break
        process.stdout.read()
        stderr = process.stderr.read()
        assert process.wait(timeout=120) == 130, stderr
    finally:
        if process.poll() is None:
            process.kill()
    assert "cancelled" in stderr
    assert not output.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_balanced_speed_runs_the_openvino_engine_and_converts_once(
    small_ct, unet_checkpoint, tmp_path, capsys
):
    pytest.importorskip("openvino")
    command = ["segment", str(small_ct), "--weights", str(unet_checkpoint), "--classes", "liver"]
    command += ["--speed", "balanced", "--progress", "json", "--no-postprocess"]
    command += ["--roi-size", "16", "--device", "cpu"]

    assert main([*command, "-o", str(tmp_path / "first.nii.gz")]) == 0
    first = capsys.readouterr()
    stages = [parse_progress_line(line).stage for line in first.out.splitlines()]
    assert "compile" in stages and stages[-1] == "done"
    assert "prepare the OpenVINO engine" in first.err
    assert main([*command, "-o", str(tmp_path / "second.nii.gz")]) == 0
    second = capsys.readouterr()
    assert "prepare the OpenVINO engine" not in second.err  # stored after the first run
    one, two = (sitk.ReadImage(str(tmp_path / name)) for name in ("first.nii.gz", "second.nii.gz"))
    assert sitk.GetArrayViewFromImage(one).tolist() == sitk.GetArrayViewFromImage(two).tolist()


def test_int8_precision_quantizes_once_and_needs_the_openvino_engine(
    small_ct, unet_checkpoint, tmp_path, capsys
):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    command = ["segment", str(small_ct), "--weights", str(unet_checkpoint), "--classes", "liver"]
    command += ["--precision", "int8", "--no-postprocess", "--roi-size", "16", "--device", "cpu"]

    assert main([*command, "-o", str(tmp_path / "refused.nii.gz")]) != 0  # faithful uses PyTorch
    assert "--engine openvino" in capsys.readouterr().err
    assert not (tmp_path / "refused.nii.gz").exists()
    command += ["--engine", "openvino"]
    assert main([*command, "-o", str(tmp_path / "first.nii.gz")]) == 0
    err = capsys.readouterr().err
    assert "plus about 3 min once to prepare the OpenVINO engine" in err
    assert err.count("converting the model for the OpenVINO CPU engine") == 1, err  # said once
    assert main([*command, "-o", str(tmp_path / "second.nii.gz")]) == 0
    assert "prepare the OpenVINO engine" not in capsys.readouterr().err  # quantized model stored
    one, two = (sitk.ReadImage(str(tmp_path / name)) for name in ("first.nii.gz", "second.nii.gz"))
    assert sitk.GetArrayViewFromImage(one).tolist() == sitk.GetArrayViewFromImage(two).tolist()
