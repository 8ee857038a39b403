"""``universalseg weights import`` checks a file before it enters the cache; refusals exit with code 5."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from UniversalSegLib.cli.main import main
from UniversalSegLib.weights.manager import WeightsManager


def _cache_files() -> list[str]:
    folder = WeightsManager().cache_dir
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


def _refused(source: Path, name: str, capsys) -> str:
    """Import ``source`` as ``name``, check that it was refused and nothing was cached; returns stderr."""
    code = main(["weights", "import", str(source), "--name", name])
    err = capsys.readouterr().err
    assert code == 5, err
    assert _cache_files() == []  # not even a temporary file
    assert main(["weights", "path", name]) == 5
    assert str(source) in err and "Nothing was copied into the cache" in err
    return err


def test_unet_checkpoint_imported_as_swinunetr_is_refused(unet_checkpoint, capsys):
    err = _refused(unet_checkpoint, "swinunetr", capsys)
    assert "checkpoint of a 'unet' model" in err and "Swin UNETR" in err
    assert "Import it as 'unet'" in err


def test_text_file_is_refused(tmp_path, capsys):
    source = tmp_path / "clip_driven_universal_swin_unetr.pth"
    source.write_text("<html>Access denied</html>\n")
    err = _refused(source, "swinunetr", capsys)
    assert "text file" in err and "not a readable PyTorch checkpoint" in err


def test_truncated_checkpoint_is_refused(unet_checkpoint, tmp_path, capsys):
    source = tmp_path / "clip_driven_universal_unet.pth"
    data = unet_checkpoint.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    err = _refused(source, "unet", capsys)
    assert "zip archive" in err and "truncated" in err


def test_checkpoint_missing_a_tensor_is_refused(unet_checkpoint, tmp_path, capsys):
    released = torch.load(unet_checkpoint, map_location="cpu", weights_only=True)
    dropped = next(key for key in released["net"] if key.endswith("weight"))
    del released["net"][dropped]
    source = tmp_path / "incomplete_unet.pth"
    torch.save(released, source)
    err = _refused(source, "unet", capsys)
    assert "missing keys (1)" in err and dropped.removeprefix("module.") in err


def test_data_file_of_wrong_size_is_refused(small_ct, capsys):
    err = _refused(small_ct, "sample_ct", capsys)
    assert "expected example_ct.nii.gz" in err and "2206612 bytes" in err and "gzip" in err


def test_valid_checkpoint_is_imported_and_used(unet_checkpoint, capsys):
    assert main(["weights", "import", str(unet_checkpoint), "--name", "unet"]) == 0
    cached = Path(capsys.readouterr().out.strip())
    assert cached.read_bytes() == unet_checkpoint.read_bytes()
    assert _cache_files() == [cached.name]


def test_default_run_refuses_a_cached_file_of_another_model(small_ct, unet_checkpoint, tmp_path, capsys):
    """A file placed in the cache by hand (not through import) still cannot pass for the default model."""
    cached = WeightsManager().path("swinunetr")
    cached.parent.mkdir(parents=True)
    shutil.copyfile(unet_checkpoint, cached)
    output = tmp_path / "out.nii.gz"

    code = main(["segment", str(small_ct), "-o", str(output), "--progress", "none"])

    err = capsys.readouterr().err
    assert code == 5, err
    assert "'unet' model" in err and "swinunetr" in err
    assert not output.exists()


@pytest.fixture(scope="module")
def swin_checkpoint(tmp_path_factory) -> Path:
    """A random-init Swin UNETR checkpoint in the released layout (about 5 s and 260 MB)."""
    from UniversalSegLib.testing import write_random_checkpoint

    path = tmp_path_factory.mktemp("swin") / "random_swin.pth"
    return write_random_checkpoint(path, backbone="swinunetr", layout="official", seed=1)


@pytest.mark.slow
def test_swin_checkpoint_is_accepted_as_swinunetr_only(swin_checkpoint, capsys):
    err = _refused(swin_checkpoint, "unet", capsys)
    assert "checkpoint of a 'swinunetr' model" in err and "U-Net" in err

    assert main(["weights", "import", str(swin_checkpoint), "--name", "swinunetr"]) == 0
    assert _cache_files() == ["clip_driven_universal_swin_unetr.pth"]
