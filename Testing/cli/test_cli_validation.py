"""``universalseg`` argument checks that happen before any long work, and their exit codes."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from UniversalSegLib.cli.main import build_parser, main


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


@pytest.mark.parametrize(
    "where",
    ["output", "statistics", "masks_dir"],
)
def test_unwritable_output_folder_exits_4_before_any_work(where, small_ct, tmp_path, capsys):
    """A path through a regular file: os.access cannot tell, creating a test file can (portable)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    bad = blocker / "sub"
    output, extra = tmp_path / "out.nii.gz", []
    if where == "output":
        output = bad / "out.nii.gz"
    elif where == "statistics":
        extra = ["--statistics", str(bad / "stats.json")]
    else:
        extra = ["--masks-dir", str(bad)]
    missing_weights = tmp_path / "missing.pth"  # a check that happens later would exit 5

    code = main(["segment", str(small_ct), "-o", str(output), "--weights", str(missing_weights), *extra])

    err = capsys.readouterr().err
    assert code == 4, err
    assert str(bad) in err and "test file" in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_under_proc_exits_4_before_any_work(small_ct, tmp_path, capsys):
    """The issue's case: /proc passes os.access for root, but nothing can be created in it."""
    code = main(
        ["segment", str(small_ct), "-o", "/proc/foo/out.nii.gz", "--weights", str(tmp_path / "w.pth")]
    )
    assert code == 4
    assert "/proc/foo" in capsys.readouterr().err


def test_write_test_leaves_no_folder_or_file_behind(small_ct, tmp_path, capsys):
    output = tmp_path / "new" / "deeper" / "out.nii.gz"
    masks = tmp_path / "masks"
    code = main(
        ["segment", str(small_ct), "-o", str(output), "--masks-dir", str(masks)]
        + ["--statistics", str(tmp_path / "stats.csv"), "--weights", str(tmp_path / "missing.pth")]
    )
    assert code == 5, capsys.readouterr().err  # all output checks passed; the weights file is missing
    assert list(tmp_path.iterdir()) == []


# One command line per (sub)command; the test below checks that the list covers them all.
COMMAND_LINES = {
    "segment": ["segment", "ct.nii.gz", "-o", "out.nii.gz"],
    "classes": ["classes"],
    "weights list": ["weights", "list"],
    "weights download": ["weights", "download", "unet"],
    "weights import": ["weights", "import", "unet.pth", "--name", "unet"],
    "weights clear": ["weights", "clear", "unet"],
    "weights path": ["weights", "path"],
    "demo": ["demo"],
}


def _subcommand_names(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    names = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, subparser in action.choices.items():
                nested = _subcommand_names(subparser, f"{prefix}{name} ")
                names |= nested or {f"{prefix}{name}"}
    return names


def test_verbose_and_quiet_are_accepted_before_and_after_every_subcommand():
    parser = build_parser()
    assert _subcommand_names(parser) == set(COMMAND_LINES)
    for argv in COMMAND_LINES.values():
        plain = parser.parse_args(argv)
        assert (plain.verbose, plain.quiet) == (False, False), argv
        for flag in ("--verbose", "-v"):
            assert parser.parse_args([*argv, flag]).verbose is True, argv
            assert parser.parse_args([flag, *argv]).verbose is True, argv  # not reset by the subcommand
        assert parser.parse_args([*argv, "-q"]).quiet is True, argv
        assert parser.parse_args(["-q", *argv]).quiet is True, argv
        if argv[0] == "weights":
            assert parser.parse_args([argv[0], "--verbose", *argv[1:]]).verbose is True, argv


@pytest.mark.parametrize("position", ["before", "after"])
def test_verbose_after_the_subcommand_shows_the_traceback(position, small_ct, tmp_path, capsys):
    command = [
        "segment",
        str(small_ct),
        "-o",
        str(tmp_path / "o.nii.gz"),
        "--weights",
        str(tmp_path / "w.pth"),
    ]
    assert main(command) == 5
    assert "Traceback" not in capsys.readouterr().err
    argv = ["--verbose", *command] if position == "before" else [*command, "--verbose"]

    assert main(argv) == 5

    assert "Traceback" in capsys.readouterr().err
