"""The project installs and runs from its own declarations: CI builds a fresh environment, nothing hides."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = Path(os.environ.get("UNIVERSALSEG_SHARED", REPO_ROOT.parent / "shared"))
CHECK_TOOL = SHARED_DIR / "tools" / "check_declared_imports.py"


def readme_test_command() -> str:
    """The command under the README's "Install and run the tests" sentence."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("Install and run the tests", 1)[1]
    return re.search(r"```bash\n(.+?)\n```", section, re.S).group(1).strip()


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_lines = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci_lines == [readme_test_command()]


def test_readme_test_command_builds_a_fresh_environment() -> None:
    script = REPO_ROOT / readme_test_command().split()[-1]
    text = script.read_text(encoding="utf-8")
    venv_created = text.index('-m venv "$venv"')
    assert text.index('rm -rf "$venv"') < venv_created  # never reuses an old environment
    assert "--system-site-packages" not in text  # sees nothing the machine happens to have
    install = text.index('"$venv/bin/python" -m pip install')
    assert venv_created < install < text.index('"$venv/bin/python" -m pytest')
    assert '-e ".[test]"' in text  # installs from the project's own files


def test_the_venv_folder_is_ignored_by_git_and_ruff() -> None:
    assert "/.venv-fresh-test/" in (REPO_ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


@pytest.mark.slow
@pytest.mark.skipif(not CHECK_TOOL.exists(), reason="../shared/tools/check_declared_imports.py is absent")
def test_main_paths_need_only_declared_packages() -> None:
    """Both backbones build and run a forward pass with every undeclared package hidden."""
    result = subprocess.run(
        [sys.executable, str(CHECK_TOOL)], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
