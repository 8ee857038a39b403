"""Dependency installs with a fake Slicer: the exact pip calls, constraints and questions.

The fake keeps a package -> version table, and its pip installs the newest version of a small index that
satisfies each requirement and the constraints file, so a test sees which MONAI an install would bring and
whether it would have needed another PyTorch.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from UniversalSegGui.dependencies import (
    DependencyError,
    ensure_dependencies,
    read_requirements,
    requirement_satisfied,
)
from UniversalSegGui.torch_compatibility import MONAI_SERIES, compatible_monai_series

RESOURCES = Path(__file__).resolve().parents[2] / "UniversalSeg" / "Resources"
CORE = read_requirements(RESOURCES / "requirements.txt")
CPU_SPEED = read_requirements(RESOURCES / "requirements-cpu-speed.txt")
OPENVINO_MB = 85 if sys.platform == "win32" else 60  # measured: pip download openvino (+ openvino-telemetry)
NNCF_MB = 14  # measured: pip download nncf, without what numpy, scipy and PyTorch bring

#: package -> [(version, torch requirement)], newest first (MONAI's from its wheels' Requires-Dist).
INDEX: dict[str, list[tuple[str, str]]] = {
    "monai": [("1.6.1", ">=2.8.0"), ("1.5.2", ">=2.4.1"), ("1.4.0", ">=1.9")],
    "openvino": [("2026.4.1", "")],
    "nncf": [("3.4.0", "")],
}
SLICER_PACKAGES = {"numpy": "1.26.4", "scipy": "1.13.1", "SimpleITK": "2.4.0"}  # as Slicer 5.8


class FakeTorchLogic:
    """PyTorchUtilsLogic: ``installTorch`` puts ``new_version`` (and a torchvision) into the fake."""

    def __init__(self, fake: FakeSlicer, new_version: str = "2.9.1+cu128", accept: bool = True) -> None:
        self.fake = fake
        self.new_version = new_version
        self.accept = accept
        self.install_calls: list[tuple[bool, str]] = []

    def torchInstalled(self) -> bool:
        return "torch" in self.fake.packages

    def installTorch(self, askConfirmation: bool, torchVersionRequirement: str):
        self.install_calls.append((askConfirmation, torchVersionRequirement))
        if not self.accept:
            return None
        assert SpecifierSet(torchVersionRequirement).contains(self.new_version)
        self.fake.packages.update(torch=self.new_version, torchvision="0.24.1")
        return object()


class FakeSlicer:
    """Records the pip calls and questions; installs from :data:`INDEX` within the constraints."""

    def __init__(
        self,
        torch: str | None = "2.6.0+cu124",
        packages: dict[str, str] | None = None,
        python: tuple[int, int] = (3, 12),
        device: str = "cpu",
        cpu_bf16: bool = True,
        has_pip_ensure: bool = True,
        answers: tuple[bool, ...] = (),
        testing: bool = False,
    ) -> None:
        self.packages = {**SLICER_PACKAGES, **(packages or {})}
        if torch is not None:
            self.packages.update(torch=torch, torchvision="0.21.0+cu124")
        self.python = python
        self.device = device
        self.cpu_bf16 = cpu_bf16
        self.has_pip_ensure = has_pip_ensure
        self.answers = list(answers)
        self.testing = testing
        self.torch = FakeTorchLogic(self)
        self.calls: list[tuple] = []
        self.questions: list[str] = []
        self.constraint_files: list[Path] = []

    # -- the SlicerEnvironment interface --
    def testing_enabled(self):
        return self.testing

    def torch_logic(self):
        return self.torch

    def installed_version(self, name):
        return self.packages.get(name)

    def python_version(self):
        return self.python

    def device_type(self, device):
        return self.device if device == "auto" else device

    def cpu_has_native_bf16(self):
        return self.cpu_bf16

    def pip_ensure(self):
        if not self.has_pip_ensure:
            return None

        def pip_ensure(requirements, constraints, prompt_install, requester):
            pins = self._read_constraints(constraints)
            self.calls.append(("pip_ensure", list(requirements), pins, prompt_install, requester))
            self._install(requirements, pins)

        return pip_ensure

    def pip_install(self, arguments):
        assert arguments[0] == "--constraint"
        pins = self._read_constraints(arguments[1])
        self.calls.append(("pip_install", arguments[2:], pins))
        self._install(arguments[2:], pins)

    def confirm(self, text):
        self.questions.append(text)
        return self.answers.pop(0)

    def is_satisfied(self, requirement):
        parsed = Requirement(requirement)
        version = self.packages.get(parsed.name)
        return version is not None and parsed.specifier.contains(version, prereleases=True)

    # -- fake pip --
    def _read_constraints(self, path) -> list[str]:
        self.constraint_files.append(Path(path))
        return Path(path).read_text(encoding="utf-8").splitlines()

    def _install(self, requirements, pins):
        pinned = dict(line.split("==") for line in pins)
        for requirement in requirements:
            parsed = Requirement(requirement)
            assert parsed.name not in pinned, f"asked pip for a pinned package: {requirement}"
            versions = INDEX.get(parsed.name, [("99.0", "")])
            version, torch_needed = next(v for v in versions if parsed.specifier.contains(v[0]))
            if torch_needed and not SpecifierSet(torch_needed).contains(pinned["torch"], prereleases=True):
                raise subprocess.CalledProcessError(1, ["pip", "install", requirement])
            self.packages[parsed.name] = version


def _core_with(monai: str) -> list[str]:
    """The core requirements that pip gets: MONAI's series for the torch, without Slicer's scipy."""
    return [monai if Requirement(r).name == "monai" else r for r in CORE if Requirement(r).name != "scipy"]


def _pins(torch: str, torchvision: str = "0.21.0+cu124") -> list[str]:
    return [
        f"torch=={torch}",
        f"torchvision=={torchvision}",
        "numpy==1.26.4",
        "scipy==1.13.1",
        "SimpleITK==2.4.0",
    ]


def test_testing_mode_installs_nothing():
    fake = FakeSlicer(torch=None, testing=True)
    report = ensure_dependencies(CORE, fake, device="cpu", speed="fast", cpu_speed_requirements=CPU_SPEED)
    assert report.skipped_for_testing
    assert fake.calls == [] and fake.questions == [] and fake.torch.install_calls == []


# -- (a) torch present and new enough ---------------------------------------------------------------


def test_present_torch_is_pinned_and_gets_its_monai_series():
    fake = FakeSlicer(torch="2.6.0+cu124")
    report = ensure_dependencies(CORE, fake)
    assert fake.calls == [
        ("pip_ensure", _core_with("monai>=1.5,<1.6"), _pins("2.6.0+cu124"), True, "UniversalSeg")
    ]
    assert fake.packages["torch"] == "2.6.0+cu124" and fake.packages["monai"] == "1.5.2"
    assert not fake.torch.install_calls and fake.questions == []
    assert report.method == "pip_ensure" and report.installed == _core_with("monai>=1.5,<1.6")
    assert not any(path.exists() for path in fake.constraint_files)  # the constraints file is removed


@pytest.mark.parametrize(
    ("torch", "python", "monai", "installed_monai"),
    [
        ("2.9.1+cu128", (3, 12), "monai>=1.6,<1.7", "1.6.1"),
        ("2.8.0", (3, 10), "monai>=1.6,<1.7", "1.6.1"),
        ("2.9.1+cu128", (3, 9), "monai>=1.5,<1.6", "1.5.2"),  # Slicer 5.8: MONAI 1.6 needs Python 3.10
        ("2.4.1", (3, 12), "monai>=1.5,<1.6", "1.5.2"),
        ("2.7.1+cu118", (3, 12), "monai>=1.5,<1.6", "1.5.2"),
    ],
)
def test_the_newest_monai_that_fits_the_torch_is_chosen(torch, python, monai, installed_monai):
    fake = FakeSlicer(torch=torch, python=python)
    report = ensure_dependencies(CORE, fake)
    assert fake.calls[0][1] == _core_with(monai) and fake.calls[0][2][0] == f"torch=={torch}"
    assert report.monai_requirement == monai
    assert fake.packages["monai"] == installed_monai and fake.packages["torch"] == torch


def test_an_installed_monai_that_fits_is_kept():
    fake = FakeSlicer(torch="2.9.1", packages={"monai": "1.5.2"})
    ensure_dependencies(CORE, fake)
    assert "monai>=1.5,<1.6" not in fake.calls[0][1] and not any("monai" in r for r in fake.calls[0][1])
    assert fake.packages["monai"] == "1.5.2"


def test_older_slicer_asks_then_pip_installs_with_the_constraints_file():
    fake = FakeSlicer(torch="2.6.0+cu124", has_pip_ensure=False, answers=(True,), packages={"tqdm": "4.66.0"})
    report = ensure_dependencies(CORE, fake)
    expected = [r for r in _core_with("monai>=1.5,<1.6") if not r.startswith("tqdm")]
    assert fake.calls == [("pip_install", expected, _pins("2.6.0+cu124"))]
    assert "monai>=1.5,<1.6" in fake.questions[0] and "PyTorch is kept" in fake.questions[0]
    assert report.method == "pip_install"


def test_declining_installs_nothing_and_says_what_is_missing():
    fake = FakeSlicer(has_pip_ensure=False, answers=(False,))
    with pytest.raises(DependencyError, match=r"monai>=1\.5,<1\.6"):
        ensure_dependencies(CORE, fake)
    assert fake.calls == []


def test_pip_ensure_decline_becomes_a_dependency_error():
    fake = FakeSlicer()

    def declining_pip_ensure(requirements, constraints, prompt_install, requester):
        raise RuntimeError("User declined package installation")

    fake.pip_ensure = lambda: declining_pip_ensure
    with pytest.raises(DependencyError, match="not installed"):
        ensure_dependencies(CORE, fake)


def test_nothing_to_do_when_everything_is_there():
    fake = FakeSlicer(
        torch="2.6.0", packages={Requirement(r).name: "99.0" for r in CORE} | {"monai": "1.5.2"}
    )
    report = ensure_dependencies(CORE, fake)
    assert fake.calls == [] and report.method == "" and not report.torch_installed_now


def test_torch_and_slicer_packages_are_never_asked_from_pip():
    fake = FakeSlicer()
    ensure_dependencies([*CORE, "torch>=2.4", "torchvision", "SimpleITK>=2"], fake)
    assert fake.calls[0][1] == _core_with("monai>=1.5,<1.6")


# -- (b) torch too old --------------------------------------------------------------------------------


def test_too_old_torch_offers_pytorch_utils_and_never_runs_pip():
    fake = FakeSlicer(torch="2.3.1+cu121", answers=(True,))
    with pytest.raises(DependencyError, match=r"PyTorch 2\.9\.1\+cu128 was installed\. Restart Slicer"):
        ensure_dependencies(CORE, fake, device="cpu", speed="fast", cpu_speed_requirements=CPU_SPEED)
    assert fake.torch.install_calls == [(True, ">=2.4.1")]
    assert (
        "PyTorch 2.4.1 or newer" in fake.questions[0]
        and "PyTorch 2.3.1+cu121 is installed" in fake.questions[0]
    )
    assert fake.calls == []


def test_too_old_torch_declined_says_how_to_get_a_newer_one():
    fake = FakeSlicer(torch="2.2.2", answers=(False,))
    with pytest.raises(DependencyError, match=r"PyTorch 2\.2\.2 is too old.*'PyTorch Utils'.*'>=2\.4\.1'"):
        ensure_dependencies(CORE, fake)
    assert fake.torch.install_calls == [] and fake.calls == [] and fake.packages["torch"] == "2.2.2"


# -- (c) no torch -------------------------------------------------------------------------------------


def test_no_torch_pytorch_utils_installs_it_then_it_is_pinned():
    fake = FakeSlicer(torch=None)
    report = ensure_dependencies(CORE, fake)
    assert fake.torch.install_calls == [(True, ">=2.4.1")]
    assert report.torch_installed_now and report.torch_version == "2.9.1+cu128"
    assert fake.calls == [
        ("pip_ensure", _core_with("monai>=1.6,<1.7"), _pins("2.9.1+cu128", "0.24.1"), True, "UniversalSeg")
    ]


def test_no_torch_and_no_pytorch_extension_or_declined():
    declined = FakeSlicer(torch=None)
    declined.torch.accept = False
    with pytest.raises(DependencyError, match="PyTorch was not installed"):
        ensure_dependencies(CORE, declined)
    assert declined.calls == []

    no_extension = FakeSlicer(torch=None)
    no_extension.torch_logic = lambda: None
    with pytest.raises(DependencyError, match="Extensions Manager"):
        ensure_dependencies(CORE, no_extension)


# -- (d) GPU users: never OpenVINO or NNCF ------------------------------------------------------------


@pytest.mark.parametrize("speed", ["faithful", "balanced", "fast"])
@pytest.mark.parametrize(("device", "resolved"), [("auto", "cuda"), ("cuda", "cuda"), ("auto", "mps")])
def test_gpu_runs_never_install_openvino_or_nncf(speed, device, resolved):
    fake = FakeSlicer(torch="2.9.1+cu128", device=resolved)
    report = ensure_dependencies(CORE, fake, device=device, speed=speed, cpu_speed_requirements=CPU_SPEED)
    assert fake.calls == [
        (
            "pip_ensure",
            _core_with("monai>=1.6,<1.7"),
            _pins("2.9.1+cu128", "0.21.0+cu124"),
            True,
            "UniversalSeg",
        )
    ]
    assert fake.questions == [] and report.cpu_speed_packages == []
    assert "openvino" not in fake.packages and "nncf" not in fake.packages


def test_cpu_faithful_needs_no_acceleration_packages():
    fake = FakeSlicer(device="cpu")
    ensure_dependencies(CORE, fake, device="auto", speed="faithful", cpu_speed_requirements=CPU_SPEED)
    assert len(fake.calls) == 1 and fake.questions == []


# -- (e) CPU users choosing balanced or fast: asked with the size, installed with the pin --------------


@pytest.mark.parametrize(
    ("speed", "cpu_bf16", "packages", "megabytes"),
    [
        ("balanced", True, ["openvino>=2024.0"], OPENVINO_MB),
        ("balanced", False, ["openvino>=2024.0"], OPENVINO_MB),
        ("fast", True, ["openvino>=2024.0", "nncf>=2.10"], OPENVINO_MB + NNCF_MB),
        ("fast", False, ["openvino>=2024.0"], OPENVINO_MB),  # int8 only where bf16 is native
    ],
)
def test_cpu_speed_mode_asks_with_the_size_then_installs_with_the_pin(speed, cpu_bf16, packages, megabytes):
    fake = FakeSlicer(torch="2.6.0+cpu", device="cpu", cpu_bf16=cpu_bf16, answers=(True,))
    report = ensure_dependencies(CORE, fake, device="auto", speed=speed, cpu_speed_requirements=CPU_SPEED)
    pins = _pins("2.6.0+cpu")
    assert fake.calls == [
        ("pip_ensure", _core_with("monai>=1.5,<1.6"), pins, True, "UniversalSeg"),
        ("pip_ensure", packages, pins, False, "UniversalSeg"),  # already asked: no second prompt
    ]
    assert len(fake.questions) == 1 and f"about {megabytes} MB" in fake.questions[0]
    assert f"'{speed}'" in fake.questions[0]
    assert report.cpu_speed_packages == [Requirement(r).name for r in packages]
    assert fake.packages["torch"] == "2.6.0+cpu"


def test_only_the_missing_acceleration_package_is_asked_for():
    fake = FakeSlicer(device="cpu", answers=(True,), packages={"openvino": "2026.4.1"})
    ensure_dependencies(CORE, fake, device="cpu", speed="fast", cpu_speed_requirements=CPU_SPEED)
    assert fake.calls[-1][1] == ["nncf>=2.10"] and f"about {NNCF_MB} MB" in fake.questions[0]
    assert "NNCF" in fake.questions[0] and "OpenVINO" not in fake.questions[0]


def test_a_failed_acceleration_install_leaves_the_run_to_its_fallback():
    fake = FakeSlicer(device="cpu", answers=(True,))
    INDEX["openvino"].insert(0, ("2099.0", ">=99"))  # a release that needs another torch: pip fails
    try:
        report = ensure_dependencies(
            CORE, fake, device="cpu", speed="balanced", cpu_speed_requirements=CPU_SPEED
        )
    finally:
        INDEX["openvino"].pop(0)
    assert "openvino" not in fake.packages and report.installed == _core_with("monai>=1.5,<1.6")


# -- (f) declined ---------------------------------------------------------------------------------------


def test_declined_acceleration_runs_the_fallback_and_is_not_asked_again(load_module_file):
    module = load_module_file()
    fake = FakeSlicer(device="cpu", answers=(False,))
    logic = module.UniversalSegLogic(dependencyEnvironment=fake)
    report = logic.ensureDependencies("auto", "fast")
    assert report.cpu_speed_declined and report.cpu_speed_packages == []
    assert fake.calls == [
        ("pip_ensure", _core_with("monai>=1.5,<1.6"), _pins("2.6.0+cu124"), True, "UniversalSeg")
    ]
    assert "runs with PyTorch instead" in fake.questions[0]
    assert "openvino" not in fake.packages and "nncf" not in fake.packages

    again = logic.ensureDependencies("auto", "balanced")  # same session: not asked again
    assert again.cpu_speed_declined and len(fake.questions) == 1 and len(fake.calls) == 1


def test_the_logic_default_arguments_install_only_the_core(load_module_file):
    module = load_module_file()
    fake = FakeSlicer(torch=None, device="cpu")
    module.UniversalSegLogic(dependencyEnvironment=fake).ensureDependencies()
    assert [call[1] for call in fake.calls] == [_core_with("monai>=1.6,<1.7")] and fake.questions == []


# -- the requirement files and the tables -----------------------------------------------------------------


def test_requirement_files_split_core_and_cpu_acceleration():
    core_names = {Requirement(r).name.lower() for r in CORE}
    assert {"monai", "einops", "scipy"} <= core_names
    assert not {"torch", "torchvision", "simpleitk", "numpy", "openvino", "nncf"} & core_names
    assert [Requirement(r).name for r in CPU_SPEED] == ["openvino", "nncf"]
    # requirements.txt's floor admits every supported series, and not MONAI 1.4 (its SwinUNETR needs img_size)
    floor = Requirement(next(r for r in CORE if r.startswith("monai"))).specifier
    assert all(floor.contains(series.requirement.split(">=")[1].split(",")[0]) for series in MONAI_SERIES)
    assert not floor.contains("1.4.0")
    assert compatible_monai_series("2.4.0", (3, 12)) == []
    assert requirement_satisfied("pytest>=1")
    assert not requirement_satisfied("pytest>=999")
    assert not requirement_satisfied("no-such-package-universalseg")


def test_the_real_environment_reads_versions_and_devices():
    from importlib import metadata

    from UniversalSegGui.dependencies import SlicerEnvironment

    environment = SlicerEnvironment()
    assert environment.installed_version("pytest") == metadata.version("pytest")
    assert environment.installed_version("no-such-package-universalseg") is None
    assert environment.python_version() == tuple(sys.version_info[:2])
    assert environment.device_type("cuda:1") == "cuda" and environment.device_type("cpu") == "cpu"
    assert environment.device_type("auto") in ("cpu", "cuda", "mps")
