"""``universalseg segment`` on batches: output names, per-CT failures, the resumable manifest, input rules."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.cli.batch_figures import STAGES
from UniversalSegLib.cli.batch_inputs import collect_inputs, folder_inputs, is_batch_request, plan_outputs
from UniversalSegLib.cli.exit_codes import ExitCode
from UniversalSegLib.cli.main import main
from UniversalSegLib.cli.prefetch import Prefetcher

#: One 16³ window of the random U-Net per CT, one class, no post-processing.
TINY_RUN = [
    "--roi-size",
    "16",
    "--classes",
    "liver",
    "--no-postprocess",
    "--device",
    "cpu",
    "--progress",
    "none",
]


def write_tiny_ct(path: Path, seed: int = 0) -> Path:
    """A 6×8×8-voxel CT at 3 mm (soft tissue and a little air) in the format its name says."""
    array = np.random.default_rng(seed).normal(40.0, 60.0, (6, 8, 8)).astype(np.int16)
    array[0, 0, :] = -1000
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def manifest_entries(folder: Path) -> list[dict]:
    return [
        json.loads(line) for line in (folder / "universalseg-manifest.rank0.jsonl").read_text().splitlines()
    ]


def write_dicom_slice(folder: Path) -> None:
    """A file with the DICOM preamble marker (enough for the folder rule; never read as an image here)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 16)


def test_folder_batch_names_outputs_after_inputs_and_a_rerun_skips_them(unet_checkpoint, tmp_path, capsys):
    cts = tmp_path / "cts"
    write_tiny_ct(cts / "case.nii.gz", seed=1)
    write_tiny_ct(cts / "case.mha", seed=2)  # same name: its output gets a suffix
    write_tiny_ct(cts / ".hidden.nii.gz")  # not an input
    out = tmp_path / "out"
    command = ["segment", str(cts), "-o", str(out), "--weights", str(unet_checkpoint), *TINY_RUN]

    assert main(command) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "2 done, 0 skipped, 0 failed" in err and err.count("Loading model") == 1
    assert sorted(path.name for path in out.iterdir()) == [
        "case.seg.nrrd",
        "case_2.seg.nrrd",
        "universalseg-manifest.rank0.jsonl",
    ]
    entries = manifest_entries(out)
    assert [(Path(e["input"]).name, Path(e["output"]).name, e["status"]) for e in entries] == [
        ("case.mha", "case.seg.nrrd", "ok"),
        ("case.nii.gz", "case_2.seg.nrrd", "ok"),
    ]
    assert all(e["identity"]["bytes"] > 0 and e["seconds"] > 0 for e in entries)
    for entry in entries:  # per-CT speed figures
        assert entry["stage"] == "" and set(entry["stage_seconds"]) == set(STAGES) and entry["windows"] >= 1
        assert entry["windows_per_second"] > 0 and entry["waited_seconds"] >= 0
    windows = sum(entry["windows"] for entry in entries)
    assert f"2 done, 0 skipped, 0 failed; {windows} windows in " in err and "windows/s" in err
    written = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}

    assert main(command) == 0
    err = capsys.readouterr().err
    assert "0 done, 2 skipped, 0 failed" in err and "Loading model" not in err  # the model never ran
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == written

    # Other options: the outputs are not from a run with these options; without --overwrite nothing is lost.
    assert main([*command, "--classes", "spleen"]) == ExitCode.SOME_INPUTS_FAILED
    err = capsys.readouterr().err
    assert "0 done, 0 skipped, 2 failed" in err and "pass --overwrite" in err and "Loading model" not in err
    assert {path.name for path in out.iterdir()} == set(written)


def test_bad_inputs_in_a_list_fail_alone_and_are_recorded(unet_checkpoint, tmp_path, capsys):
    good = write_tiny_ct(tmp_path / "cts" / "good.nrrd")
    (tmp_path / "cts" / "broken.nii.gz").write_bytes(b"not an image")
    listing = tmp_path / "inputs.txt"
    listing.write_text(
        "# inputs of the test\ncts/broken.nii.gz\n\ncts/missing.nii.gz  # gone\n" + f"{good}\n"
    )
    out = tmp_path / "out"

    code = main(
        ["segment", "--input-list", str(listing), "-o", str(out), "--output-format", "nii.gz"]
        + ["--weights", str(unet_checkpoint), *TINY_RUN]
    )

    err = capsys.readouterr().err
    assert code == ExitCode.SOME_INPUTS_FAILED == 6, err
    assert "1 done, 0 skipped, 2 failed" in err
    labels = sitk.ReadImage(str(out / "good.nii.gz"))
    assert labels.GetSize() == (8, 8, 6)
    status = {Path(e["input"]).name: (e["status"], e["error"]) for e in manifest_entries(out)}
    assert status["good.nrrd"] == ("ok", "")
    stages = {Path(e["input"]).name: e["stage"] for e in manifest_entries(out)}
    assert stages == {"good.nrrd": "", "broken.nii.gz": "read", "missing.nii.gz": "read"}
    assert status["broken.nii.gz"][0] == "failed" and "cannot read input" in status["broken.nii.gz"][1]
    assert status["missing.nii.gz"][0] == "failed" and "does not exist" in status["missing.nii.gz"][1]
    assert not [path for path in out.iterdir() if path.name.startswith(".")]  # no temporary file left


def test_single_input_keeps_the_single_form(tmp_path, capsys):
    """One file in: -o is a file as before (end to end in test_cli_segment.py); no batch, no manifest."""
    ct = write_tiny_ct(tmp_path / "ct.nii.gz")
    folder = tmp_path / "outdir"
    folder.mkdir()
    assert main(["segment", str(ct), "-o", str(folder)]) == ExitCode.USAGE
    assert "cannot tell the output format of 'outdir'" in capsys.readouterr().err
    missing = tmp_path / "missing.pth"
    assert main(["segment", str(ct), "-o", str(tmp_path / "o.nii.gz"), "--weights", str(missing)]) == 5
    err = capsys.readouterr().err
    assert "weights file" in err and "Batch" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ct.nii.gz", "outdir"]


def test_folder_rule_dicom_series_stays_one_input(tmp_path):
    series = tmp_path / "series"
    write_dicom_slice(series)
    assert folder_inputs(series) is None and not is_batch_request([str(series)], None, None)
    studies = tmp_path / "studies"
    write_dicom_slice(studies / "patient_b")
    write_dicom_slice(studies / "patient_a")
    (studies / "notes").mkdir()
    write_tiny_ct(studies / "extra.nii.gz")
    (studies / "old.seg.nrrd").write_bytes(b"")  # a Slicer segmentation, not a CT
    assert is_batch_request([str(studies)], None, None)
    inputs = collect_inputs([str(studies), str(series)], None)
    assert [path.relative_to(tmp_path).as_posix() for path in inputs] == [
        "series",
        "studies/extra.nii.gz",
        "studies/patient_a",
        "studies/patient_b",
    ]
    names = [item.output.name for item in plan_outputs(inputs, tmp_path / "out", "mha")]
    assert names == ["series.mha", "extra.mha", "patient_a.mha", "patient_b.mha"]


def test_batch_refuses_a_file_name_and_the_input_folder_as_output(tmp_path, capsys):
    cts = tmp_path / "cts"
    write_tiny_ct(cts / "a.nii.gz")
    write_tiny_ct(cts / "b.nii.gz")
    assert main(["segment", str(cts), "-o", str(tmp_path / "x.seg.nrrd")]) == ExitCode.USAGE
    assert main(["segment", str(cts), "-o", str(cts)]) == ExitCode.USAGE
    assert main(["segment", str(cts), "-o", str(tmp_path / "o"), "--statistics", "s.json"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "folder" in err and "holds input CTs" in err and "--statistics works with one CT_INPUT" in err
    assert not (tmp_path / "o").exists()


def test_prefetch_reads_one_ahead_and_stops_on_cancel():
    started: list[int] = []

    def load(item: int) -> int:
        started.append(item)
        return item * 10

    with Prefetcher(range(5), load) as prefetcher:
        iterator = iter(prefetcher)
        first = next(iterator)
        deadline = time.monotonic() + 10
        while len(started) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread reads item 1 while the caller works on item 0 ...
        time.sleep(0.2)  # ... and no further
        assert (first.value, first.error, started) == (0, None, [0, 1])
        assert [loaded.value for loaded in iterator] == [10, 20, 30, 40]

    cancel = threading.Event()

    def slow(item: int) -> int:
        if item == 1:
            raise ValueError("unreadable")
        time.sleep(0.05)
        return item

    with Prefetcher(range(100), slow, cancel) as prefetcher:
        seen = []
        for loaded in prefetcher:
            seen.append(loaded)
            if len(seen) == 2:
                cancel.set()
    assert len(seen) == 2 and isinstance(seen[1].error, ValueError)
