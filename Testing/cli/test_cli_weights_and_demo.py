"""``universalseg weights`` and ``universalseg demo`` without network access."""

from __future__ import annotations

from UniversalSegLib.cli.main import main


def test_weights_import_path_and_clear(unet_checkpoint, capsys):
    assert main(["weights", "path", "unet"]) == 5
    assert main(["weights", "import", str(unet_checkpoint), "--name", "unet"]) == 0
    assert "could not be verified" in capsys.readouterr().err  # the catalog has no sha256 for it
    assert main(["weights", "path", "unet"]) == 0
    cached = capsys.readouterr().out.strip()
    assert cached.endswith("clip_driven_universal_unet.pth")
    assert main(["weights", "list"]) == 0
    assert "unet" in capsys.readouterr().out
    assert main(["weights", "clear", "unet"]) == 0
    assert main(["weights", "path", "unet"]) == 5


def test_weights_download_needs_license(capsys):
    assert main(["weights", "download", "swinunetr"]) == 5
    err = capsys.readouterr().err
    assert "CC BY-NC-ND 4.0" in err and "--accept-license" in err


def test_weights_unknown_name_exits_2(capsys):
    assert main(["weights", "download", "resnet"]) == 2
    assert "swinunetr" in capsys.readouterr().err


def test_demo_offline_names_url_and_import_command(tmp_path, unused_port, monkeypatch, capsys):
    monkeypatch.setenv("UNIVERSALSEG_WEIGHTS_BASE_URL", f"http://127.0.0.1:{unused_port}/files")

    code = main(["demo", "--accept-license", "-o", str(tmp_path / "demo")])

    err = capsys.readouterr().err
    assert code == 5
    assert f"http://127.0.0.1:{unused_port}/files/example_ct.nii.gz" in err
    assert "universalseg weights import example_ct.nii.gz --name sample_ct" in err
    assert not (tmp_path / "demo" / "demo_segmentation.seg.nrrd").exists()


def test_demo_stops_at_missing_weights(tmp_path, unused_port, monkeypatch, capsys, ct_dir):
    """With the sample CT cached (imported, checksum verified), the next missing file is the weights."""
    assert (
        main(
            [
                "weights",
                "import",
                str(ct_dir / "totalseg_example" / "example_ct.nii.gz"),
                "--name",
                "sample_ct",
            ]
        )
        == 0
    )
    monkeypatch.setenv("UNIVERSALSEG_WEIGHTS_URL_SWINUNETR", f"http://127.0.0.1:{unused_port}/swin.pth")

    code = main(["demo", "--accept-license", "-o", str(tmp_path / "demo")])

    err = capsys.readouterr().err
    assert code == 5
    assert f"http://127.0.0.1:{unused_port}/swin.pth" in err
    assert "universalseg weights import clip_driven_universal_swin_unetr.pth --name swinunetr" in err
