"""Fixtures shared by all test folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from UniversalSegLib.privacy import disable_third_party_telemetry

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
disable_third_party_telemetry()  # a test that imports nncf or openvino directly must not write ~/intel either

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("UNIVERSALSEG_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (spec files and real CTs)."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"../shared not found at {SHARED_DIR}; set UNIVERSALSEG_SHARED")
    return SHARED_DIR


@pytest.fixture(scope="session")
def ct_dir(shared_dir: Path) -> Path:
    """Folder of the real test CTs (see ../shared/data/ct/README.md)."""
    return shared_dir / "data" / "ct"


@pytest.fixture(scope="session")
def spec_dir(shared_dir: Path) -> Path:
    return shared_dir / "spec"


@pytest.fixture(autouse=True)
def _isolated_user_cache(tmp_path_factory, monkeypatch):
    """Never touch the real per-user cache from tests."""
    monkeypatch.setenv("UNIVERSALSEG_HOME", str(tmp_path_factory.getbasetemp() / "universalseg_home"))
    # Runs keep no image features unless a test gives its own FeatureCache (each kept CT costs disk and time).
    monkeypatch.setenv("UNIVERSALSEG_FEATURE_CACHE_GB", "0")
