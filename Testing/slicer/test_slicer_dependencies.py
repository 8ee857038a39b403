"""Dependency decisions with a fake Slicer: PyTorchUtils for torch, pip_ensure or confirm + pip_install."""

from __future__ import annotations

from pathlib import Path

import pytest
from UniversalSegGui.dependencies import (
    DependencyError,
    ensure_dependencies,
    read_requirements,
    requirement_satisfied,
)

REQUIREMENTS_FILE = Path(__file__).resolve().parents[2] / "UniversalSeg" / "Resources" / "requirements.txt"


class FakeTorchLogic:
    def __init__(self, installed: bool, install_succeeds: bool = True) -> None:
        self.installed = installed
        self.install_succeeds = install_succeeds
        self.install_calls = []

    def torchInstalled(self) -> bool:
        return self.installed

    def installTorch(self, askConfirmation: bool, torchVersionRequirement: str):
        self.install_calls.append((askConfirmation, torchVersionRequirement))
        self.installed = self.install_succeeds
        return object() if self.install_succeeds else None


class FakeSlicer:
    """Records what would have been installed."""

    def __init__(self, testing=False, torch=None, has_pip_ensure=True, confirm=True, installed=()):
        self.testing = testing
        self.torch = torch if torch is not None else FakeTorchLogic(installed=True)
        self.has_pip_ensure = has_pip_ensure
        self.answer = confirm
        self.installed = set(installed)
        self.calls = []

    def testing_enabled(self):
        return self.testing

    def torch_logic(self):
        return self.torch

    def pip_ensure(self):
        if not self.has_pip_ensure:
            return None

        def ensure(requirements, requester):
            self.calls.append(("pip_ensure", list(requirements), requester))
            self.installed |= set(requirements)

        return ensure

    def pip_install(self, requirements):
        self.calls.append(("pip_install", requirements))
        self.installed |= set(requirements.split())

    def confirm(self, text):
        self.calls.append(("confirm", text))
        return self.answer

    def is_satisfied(self, requirement):
        return requirement in self.installed


REQS = ["monai>=1.4", "scipy>=1.10", "pynrrd>=1.0"]


def test_testing_mode_installs_nothing():
    fake = FakeSlicer(testing=True, torch=FakeTorchLogic(installed=False))
    report = ensure_dependencies(REQS, fake)
    assert report.skipped_for_testing
    assert fake.calls == [] and fake.torch.install_calls == []


def test_pip_ensure_gets_only_the_missing_requirements():
    fake = FakeSlicer(installed={"scipy>=1.10"})
    report = ensure_dependencies(REQS, fake)
    assert fake.calls == [("pip_ensure", ["monai>=1.4", "pynrrd>=1.0"], "UniversalSeg")]
    assert report.method == "pip_ensure" and report.installed == ["monai>=1.4", "pynrrd>=1.0"]


def test_older_slicer_asks_then_uses_pip_install():
    fake = FakeSlicer(has_pip_ensure=False)
    report = ensure_dependencies(REQS, fake)
    assert fake.calls[0][0] == "confirm" and "monai>=1.4" in fake.calls[0][1]
    assert fake.calls[1] == ("pip_install", "monai>=1.4 scipy>=1.10 pynrrd>=1.0")
    assert report.method == "pip_install"


def test_declining_installs_nothing_and_says_what_is_missing():
    fake = FakeSlicer(has_pip_ensure=False, confirm=False)
    with pytest.raises(DependencyError, match="monai>=1.4"):
        ensure_dependencies(REQS, fake)
    assert [call[0] for call in fake.calls] == ["confirm"]


def test_nothing_to_do_when_everything_is_there():
    fake = FakeSlicer(installed=REQS)
    report = ensure_dependencies(REQS, fake)
    assert fake.calls == [] and report.method == "" and not report.torch_installed_now


def test_torch_only_through_pytorch_utils():
    torch = FakeTorchLogic(installed=False)
    fake = FakeSlicer(torch=torch, installed=REQS)
    assert ensure_dependencies(REQS, fake).torch_installed_now
    assert torch.install_calls == [(True, ">=2.3")]
    assert all("torch" not in str(call) for call in fake.calls)

    with pytest.raises(DependencyError, match="PyTorch was not installed"):
        ensure_dependencies(REQS, FakeSlicer(torch=FakeTorchLogic(installed=False, install_succeeds=False)))

    no_extension = FakeSlicer(installed=REQS)
    no_extension.torch = None
    no_extension.torch_logic = lambda: None
    with pytest.raises(DependencyError, match="Extensions Manager"):
        ensure_dependencies(REQS, no_extension)


def test_a_failed_install_is_reported():
    fake = FakeSlicer()
    fake.pip_ensure = lambda: lambda requirements, requester: None  # installs nothing
    with pytest.raises(DependencyError, match="still missing"):
        ensure_dependencies(REQS, fake)


def test_requirements_file_has_no_torch_and_parses():
    requirements = read_requirements(REQUIREMENTS_FILE)
    names = [req.split(">")[0].split("=")[0].strip().lower() for req in requirements]
    assert "monai" in names
    assert not {"torch", "simpleitk", "numpy"} & set(names)
    assert requirement_satisfied("pytest>=1")
    assert not requirement_satisfied("pytest>=999")
    assert not requirement_satisfied("no-such-package-universalseg")
