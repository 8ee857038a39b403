"""``universalseg`` argument checks that happen before any long work, and their exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from UniversalSegLib.cli.main import main


def test_classes_json_lists_all_32(capsys):
    assert main(["classes", "--json"]) == 0
    classes = json.loads(capsys.readouterr().out)
    assert [c["index"] for c in classes] == list(range(1, 33))
    assert {"liver", "kidney_tumor"} <= {c["key"] for c in classes}


def test_unknown_class_exits_2_with_valid_list(small_ct, tmp_path, capsys):
    code = main(
        ["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--classes", "liver", "livr_tumour"]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "livr_tumour" in err and "spleen" in err and "hepatic_vessel" in err
    assert not (tmp_path / "o.nii.gz").exists()


def test_unknown_preset_exits_2(small_ct, tmp_path, capsys):
    assert main(["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--preset", "nope"]) == 2
    assert "Valid presets" in capsys.readouterr().err


def test_existing_output_is_refused_and_untouched(small_ct, tmp_path, capsys):
    output = tmp_path / "seg.nii.gz"
    output.write_bytes(b"user data")
    before = output.stat().st_mtime_ns

    assert main(["segment", str(small_ct), "-o", str(output), "--classes", "liver"]) == 4

    assert "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"user data" and output.stat().st_mtime_ns == before


def test_missing_input_exits_3(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "o.seg.nrrd")]) == 3
    assert "nope.nii.gz" in capsys.readouterr().err


def test_corrupt_input_exits_3(tmp_path, unet_checkpoint, capsys):
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b this is not a NIfTI file" * 10)
    code = main(
        ["segment", str(corrupt), "-o", str(tmp_path / "o.nii.gz"), "--weights", str(unet_checkpoint)]
    )
    assert code == 3
    assert "corrupt.nii.gz" in capsys.readouterr().err
    assert not (tmp_path / "o.nii.gz").exists()


def test_unknown_output_extension_exits_2(small_ct, tmp_path, capsys):
    assert main(["segment", str(small_ct), "-o", str(tmp_path / "o.png")]) == 2
    assert ".seg.nrrd" in capsys.readouterr().err


def test_bad_option_value_exits_2(small_ct, tmp_path):
    assert main(["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--overlap", "1.5"]) == 2
    assert main(["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--device", "tpu"]) == 2


def test_missing_weights_file_exits_5(small_ct, tmp_path, capsys):
    code = main(
        ["segment", str(small_ct), "-o", str(tmp_path / "o.nii.gz"), "--weights", str(tmp_path / "w.pth")]
    )
    assert code == 5 and "w.pth" in capsys.readouterr().err


def test_python_dash_m_help_lists_exit_codes():
    done = subprocess.run(
        [sys.executable, "-m", "UniversalSegLib", "--help"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "segment" in done.stdout and "exit codes" in done.stdout and "130" in done.stdout
