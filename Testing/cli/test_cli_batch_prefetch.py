"""Batch overlap: the prefetch thread reads AND preprocesses the next CT; per-CT speed figures.

The model is an analytic stand-in (a voxel is "liver" when its HU is above the middle of the intensity
window), so the masks have structure and a batch run can be compared with a plain ``segment`` run.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the conventional alias)
import torch

from UniversalSegLib.cli import batch
from UniversalSegLib.cli.batch_figures import STAGES
from UniversalSegLib.cli.exit_codes import ExitCode
from UniversalSegLib.cli.main import main
from UniversalSegLib.inference import InferenceOptions, segment

LIVER = 6
RUN = ["--roi-size", "16", "--classes", "liver", "--no-postprocess", "--device", "cpu", "--progress", "none"]


class ThresholdModel:
    """Every requested channel is ``10 · (intensity − 0.5)``: above ~38 HU is inside."""

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        return (10.0 * (x - 0.5)).repeat(1, len(list(channels or [0])), 1, 1, 1)


def write_ball_ct(path: Path, seed: int, hu: float = 200.0, background: float = -20.0) -> Path:
    """A 14×12×10 CT (2.2×1.9×3.1 mm, tilted axes) with a bright ball off-centre in soft tissue."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[0:10, 0:12, 0:14]
    centre = (4 + seed % 3, 5, 6 + seed % 4)
    ball = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 < 9 + seed
    array = np.where(ball, hu, background) + rng.normal(0.0, 5.0, ball.shape)
    image = sitk.GetImageFromArray(array.astype(np.int16))
    image.SetSpacing((2.2, 1.9, 3.1))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))  # not the RAS the model uses
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def threshold_model(monkeypatch, tmp_path) -> Path:
    """The batch runs :class:`ThresholdModel`; returns a weights file (only its size and time are used)."""
    monkeypatch.setattr(batch._RankRun, "_load_model", lambda self, path: ThresholdModel())
    weights = tmp_path / "stand_in.pth"
    weights.write_bytes(b"never loaded")
    return weights


def entries(folder: Path) -> dict[str, dict]:
    lines = (folder / "universalseg-manifest.rank0.jsonl").read_text().splitlines()
    return {Path(entry["input"]).name: entry for entry in map(json.loads, lines)}


def test_prefetch_thread_preprocesses_and_masks_equal_a_plain_segment_run(
    threshold_model, tmp_path, monkeypatch, capsys
):
    from UniversalSegLib.inference import pipeline, preprocessing

    cts = [write_ball_ct(tmp_path / "cts" / f"case{seed}.nii.gz", seed) for seed in range(3)]
    threads: list[str] = []
    original = preprocessing.preprocess

    def recording(image, settings):
        threads.append(threading.current_thread().name)
        return original(image, settings)

    def refused(image, settings):
        raise AssertionError("segment preprocessed again although the batch had prepared the CT")

    monkeypatch.setattr(preprocessing, "preprocess", recording)  # what the batch's loader imports
    monkeypatch.setattr(pipeline, "preprocess", refused)  # what segment() would call
    out = tmp_path / "out"
    command = ["segment", str(tmp_path / "cts"), "-o", str(out), "--output-format", "nii.gz"]

    assert main([*command, "--weights", str(threshold_model), *RUN]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert threads == ["universalseg-prefetch"] * 3
    recorded = entries(out)
    windows = sum(entry["windows"] for entry in recorded.values())
    assert f"3 done, 0 skipped, 0 failed; {windows} windows in " in err and "CTs/min" in err
    assert err.count("(done beforehand)") == 3 and err.count("windows/s") == 4

    monkeypatch.setattr(pipeline, "preprocess", original)
    options = InferenceOptions(roi_size=16, postprocess=False, device="cpu")
    for ct in cts:
        expected = segment(sitk.ReadImage(str(ct)), ThresholdModel(), [LIVER], options).masks[LIVER]
        expected_array = sitk.GetArrayFromImage(expected)
        assert 0 < expected_array.sum() < expected_array.size  # the masks have structure
        labels = sitk.ReadImage(str(out / ct.name))
        np.testing.assert_array_equal(sitk.GetArrayFromImage(labels) == LIVER, expected_array == 1)
        assert labels.GetDirection() == pytest.approx(expected.GetDirection())

    for entry in recorded.values():
        assert entry["status"] == "ok" and entry["stage"] == ""
        assert set(entry["stage_seconds"]) == set(STAGES)
        assert all(seconds >= 0 for seconds in entry["stage_seconds"].values())
        assert entry["stage_seconds"]["network"] <= entry["stage_seconds"]["inference"]
        assert entry["windows"] >= 1
        inference = entry["stage_seconds"]["inference"]  # rounded to ms: the speed is within its bounds
        lowest, highest = (entry["windows"] / max(inference + bound, 1e-9) for bound in (6e-4, -6e-4))
        assert lowest <= entry["windows_per_second"] <= highest
        assert entry["waited_seconds"] >= 0 and entry["seconds"] > 0


def test_a_ct_that_fails_preprocessing_is_reported_and_the_batch_goes_on(threshold_model, tmp_path, capsys):
    cts = tmp_path / "cts"
    write_ball_ct(cts / "a.nii.gz", 0)
    write_ball_ct(cts / "b_air.nii.gz", 1, hu=-1000.0, background=-1000.0)  # reads, but preprocessing fails
    write_ball_ct(cts / "c.nii.gz", 2)
    out = tmp_path / "out"
    command = ["segment", str(cts), "-o", str(out), "--weights", str(threshold_model), *RUN]

    assert main(command) == ExitCode.SOME_INPUTS_FAILED
    err = capsys.readouterr().err
    assert "2 done, 0 skipped, 1 failed" in err and "cannot preprocess" in err
    recorded = entries(out)
    failed = recorded["b_air.nii.gz"]
    assert (failed["status"], failed["stage"]) == ("failed", "preprocess")
    assert "cannot preprocess" in failed["error"] and "no voxel is above -175 HU" in failed["error"]
    assert set(failed["stage_seconds"]) == {"read", "preprocess"} and failed["windows"] == 0
    assert [recorded[name]["status"] for name in ("a.nii.gz", "c.nii.gz")] == ["ok", "ok"]
    assert sorted(path.name for path in out.glob("*.seg.nrrd")) == ["a.seg.nrrd", "c.seg.nrrd"]

    assert main(command) == ExitCode.SOME_INPUTS_FAILED  # a re-run retries only the failed one
    assert "0 done, 2 skipped, 1 failed" in capsys.readouterr().err


def test_old_manifest_entries_without_figures_still_count_as_done(threshold_model, tmp_path, capsys):
    cts = tmp_path / "cts"
    write_ball_ct(cts / "a.nii.gz", 0)
    out = tmp_path / "out"
    command = ["segment", str(cts), "-o", str(out), "--weights", str(threshold_model), *RUN]
    assert main(command) == 0
    capsys.readouterr()
    manifest = out / "universalseg-manifest.rank0.jsonl"
    entry = json.loads(manifest.read_text())
    for new in ("stage", "stage_seconds", "windows", "windows_per_second", "waited_seconds"):
        del entry[new]  # as written before the figures existed
    manifest.write_text(json.dumps(entry) + "\n")

    assert main(command) == 0
    assert "0 done, 1 skipped, 0 failed" in capsys.readouterr().err
