"""Fixtures for the CLI tests: a small real CT crop and a random-init checkpoint (no downloads)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def small_ct(ct_dir: Path, tmp_path_factory) -> Path:
    """A 16x16x16 crop (3 mm voxels) from inside the body of the real TotalSegmentator example CT."""
    import SimpleITK as sitk  # noqa: N813 (the conventional alias)

    source = ct_dir / "totalseg_example" / "example_ct_sm.nii.gz"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    crop = sitk.ReadImage(str(source))[45:61, 35:51, 10:26]
    path = tmp_path_factory.mktemp("ct") / "small_ct.nii.gz"
    sitk.WriteImage(crop, str(path))
    return path


@pytest.fixture(scope="session")
def unet_checkpoint(tmp_path_factory) -> Path:
    """A random-init U-Net checkpoint in the released (official) layout."""
    testing = pytest.importorskip("UniversalSegLib.testing")
    return testing.write_random_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "random_unet.pth", backbone="unet", layout="official", seed=0
    )


@pytest.fixture
def unused_port() -> int:
    """A local port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(autouse=True)
def _fresh_home(tmp_path, monkeypatch):
    """Each CLI test gets an empty weights cache (imports and license acceptance do not leak)."""
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path / "universalseg_home"))
    for name in (
        "UNIVERSALSEG_WEIGHTS_BASE_URL",
        "UNIVERSALSEG_WEIGHTS_URL_SWINUNETR",
        "UNIVERSALSEG_WEIGHTS_URL_UNET",
    ):
        monkeypatch.delenv(name, raising=False)
