"""The training code installs as ``universalseg_training`` (no top-level ``training`` in site-packages)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]


def _setuptools_config() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]


def test_every_package_is_listed_and_training_is_renamed():
    config = _setuptools_config()
    on_disk = {
        ".".join(path.parent.relative_to(REPO_ROOT).parts)
        for path in (REPO_ROOT / "UniversalSegLib").rglob("__init__.py")
        if "__pycache__" not in path.parts
    }
    listed = set(config["packages"])
    assert on_disk - listed == set(), "add these packages to [tool.setuptools] packages in pyproject.toml"
    assert listed - on_disk == {"universalseg_training"}
    assert config["package-dir"] == {"universalseg_training": "training"}
    assert not list((REPO_ROOT / "training").glob("*/__init__.py"))  # no subpackage to list
    assert "configs/*" in config["package-data"]["universalseg_training"]


def test_training_modules_import_each_other_relatively():
    for path in (REPO_ROOT / "training").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "from training." not in text and "import training" not in text, path.name


@pytest.mark.slow  # builds and installs a wheel: about 15 s
def test_wheel_installs_universalseg_training_only(tmp_path):
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("UniversalSegLib", "training"):
        shutil.copytree(REPO_ROOT / name, source / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO_ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path)],
                   check=True, capture_output=True, cwd=tmp_path)  # fmt: skip
    wheel = next(tmp_path.glob("universalseg-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top_level = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        assert archive.read(top_level).decode().split() == ["UniversalSegLib", "universalseg_training"]
    assert {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")} == {
        "UniversalSegLib",
        "universalseg_training",
    }
    assert "universalseg_training/configs/example_small.yaml" in names
    site = tmp_path / "site"
    subprocess.run(
        [*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True
    )
    assert not (site / "training").exists()
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    probe = "import universalseg_training.train as t; print(t.__file__)"
    imported = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith(str(site / "universalseg_training"))
    helped = subprocess.run([sys.executable, "-m", "universalseg_training.prepare", "--help"], env=env,
                            cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert helped.returncode == 0 and helped.stdout.startswith(
        "usage: python -m universalseg_training.prepare"
    )
