"""Install what the engine needs into Slicer's Python, the Slicer way, without replacing anything.

- PyTorch only through the PyTorch extension (``PyTorchUtils``), never with pip. When the installed
  PyTorch is too old for every supported MONAI, the user is told so and offered PyTorchUtils' install of a
  suitable one; pip is never left to pick a PyTorch.
- The core requirements (``Resources/requirements.txt``), with the MONAI series that fits the installed
  PyTorch (:mod:`UniversalSegGui.torch_compatibility`), are installed with a constraints file that pins
  the installed torch, torchvision, torchaudio, numpy, scipy and SimpleITK: pip fails rather than replace
  them.
  ``slicer.packaging.pip_ensure(..., constraints=...)`` on Slicer >= 5.12 (it asks, installs with
  progress and offers a restart); on older Slicer a confirmation, then ``slicer.util.pip_install`` with
  ``-c FILE``.
- The CPU-acceleration packages (``Resources/requirements-cpu-speed.txt``: OpenVINO, NNCF) only when a
  speed mode that uses them is about to run on the CPU, after the user agreed to the stated download
  (:mod:`UniversalSegGui.cpu_speed_packages`); never for GPU runs. Declined: the mode's fallback runs.
- Nothing is installed while Slicer runs its tests (``slicer.app.testingEnabled()``).

The decisions are made by :func:`ensure_dependencies` against a :class:`SlicerEnvironment`, which
tests replace with a fake.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from UniversalSegGui.cpu_speed_packages import download_megabytes, install_question, packages_for_speed
from UniversalSegGui.installed_requirements import requirement_satisfied
from UniversalSegGui.slicer_environment import SlicerEnvironment
from UniversalSegGui.torch_compatibility import (
    MINIMUM_TORCH_VERSION,
    MonaiSeries,
    compatible_monai_series,
    pin_constraints,
    requirement_name,
    torch_is_new_enough,
    without_pinned,
)

__all__ = [
    "MINIMUM_TORCH_VERSION",
    "DependencyError",
    "DependencyReport",
    "SlicerEnvironment",
    "ensure_dependencies",
    "read_requirements",
    "requirement_satisfied",
]

REQUESTER = "UniversalSeg"
logger = logging.getLogger(__name__)


class DependencyError(RuntimeError):
    """A dependency is missing and was not installed; the message says what to do."""


@dataclass
class DependencyReport:
    """What :func:`ensure_dependencies` did.

    Attributes:
        skipped_for_testing: Slicer runs its tests, so nothing was checked or installed.
        torch_installed_now: PyTorchUtils installed PyTorch during this call.
        torch_version: the PyTorch that was kept (and pinned).
        monai_requirement: the MONAI series chosen for that PyTorch.
        constraints: the constraint lines pip ran with (empty when pip did not run).
        installed: the requirements that were installed.
        method: ``pip_ensure``, ``pip_install`` or ``""`` (nothing to install).
        cpu_speed_packages: the CPU-acceleration packages the run uses (installed now or before).
        cpu_speed_declined: the user declined them; the speed mode's fallback runs.
    """

    skipped_for_testing: bool = False
    torch_installed_now: bool = False
    torch_version: str = ""
    monai_requirement: str = ""
    constraints: list[str] = field(default_factory=list)
    installed: list[str] = field(default_factory=list)
    method: str = ""
    cpu_speed_packages: list[str] = field(default_factory=list)
    cpu_speed_declined: bool = False


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments and blank lines dropped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def ensure_torch(environment: Any, translate: Callable[[str], str] = str) -> bool:
    """Make sure PyTorch is installed (through PyTorchUtils); returns True if it was installed now."""
    _ = translate
    logic = environment.torch_logic()
    if logic is None:
        raise DependencyError(
            _(
                "UniversalSeg needs the PyTorch extension: install 'PyTorch' from the Extensions Manager, "
                "restart Slicer, then try again."
            )
        )
    if logic.torchInstalled():
        return False
    torch = logic.installTorch(askConfirmation=True, torchVersionRequirement=f">={MINIMUM_TORCH_VERSION}")
    if torch is None:
        raise DependencyError(
            _("PyTorch was not installed. Install it with the 'PyTorch Utils' module, then try again.")
        )
    return True


def ensure_dependencies(
    requirements: Iterable[str],
    environment: Any = None,
    translate: Callable[[str], str] = str,
    *,
    device: str = "auto",
    speed: str = "faithful",
    cpu_speed_requirements: Sequence[str] = (),
    offer_cpu_speed: bool = True,
) -> DependencyReport:
    """Check and install what a run on ``device`` in ``speed`` mode needs (rules: module docstring).

    Args:
        requirements: the core requirements (``requirements.txt``).
        environment: the Slicer calls; :class:`SlicerEnvironment` when ``None``.
        translate: Slicer's ``_`` for user-visible text.
        device: the run's device choice (``auto``, ``cpu``, ``cuda``, ``mps``).
        speed: the run's speed mode.
        cpu_speed_requirements: the CPU-acceleration requirements (``requirements-cpu-speed.txt``).
        offer_cpu_speed: ask about missing CPU-acceleration packages (``False`` after a decline).

    Raises:
        DependencyError: something is missing and was not installed (declined, PyTorch too old, no PyTorch
            extension, pip failed); the message says what to do.
    """
    _ = translate
    environment = environment or SlicerEnvironment()
    report = DependencyReport()
    if environment.testing_enabled():
        logger.info("Testing mode: not installing Python packages")
        report.skipped_for_testing = True
        return report
    report.torch_installed_now = ensure_torch(environment, translate)
    report.torch_version = environment.installed_version("torch") or ""
    series = _monai_series_for_torch(environment, report.torch_version, translate)
    core = without_pinned(requirements)
    report.monai_requirement = _monai_requirement(series, environment.is_satisfied)
    core = [report.monai_requirement if requirement_name(r) == "monai" else r for r in core]
    missing = [requirement for requirement in core if not environment.is_satisfied(requirement)]
    if missing:
        report.method = _install(environment, missing, report, ask_first=True, translate=translate)
        _check_installed(environment, missing, translate)
        report.installed += missing
    optional = _cpu_speed_to_install(
        environment, device, speed, without_pinned(cpu_speed_requirements), offer_cpu_speed, report, _
    )
    if optional:
        try:
            report.method = _install(environment, optional, report, ask_first=False, translate=translate)
            _check_installed(environment, optional, translate)
            report.installed += optional
        except DependencyError as error:
            logger.warning("%s The run continues without them.", error)
    return report


def _monai_series_for_torch(
    environment: Any, torch_version: str, translate: Callable[[str], str]
) -> list[MonaiSeries]:
    """The MONAI series that fit the installed PyTorch; otherwise offer a newer PyTorch and raise."""
    _ = translate
    if not torch_version:
        raise DependencyError(
            _("PyTorch is installed but cannot be found now. Restart Slicer, then try again.")
        )
    series = compatible_monai_series(torch_version, environment.python_version())
    if series:
        return series
    if torch_is_new_enough(torch_version):
        python = ".".join(str(part) for part in environment.python_version())
        raise DependencyError(
            _("Slicer's Python {python} is too old for UniversalSeg: use Slicer 5.10 or newer.").format(
                python=python
            )
        )
    raise _offer_newer_torch(environment, torch_version, translate)


def _offer_newer_torch(
    environment: Any, torch_version: str, translate: Callable[[str], str]
) -> DependencyError:
    """Say that the installed PyTorch is too old and offer PyTorchUtils' install of a suitable one.

    Returns:
        the error to raise: restart after the install, or how to get a newer PyTorch.
    """
    _ = translate
    question = _(
        "UniversalSeg needs PyTorch {minimum} or newer, but PyTorch {version} is installed: no supported "
        "MONAI version works with it.\n\n"
        "Install a newer PyTorch with the PyTorch extension now? It replaces PyTorch {version} for all "
        "modules; Slicer must be restarted afterwards."
    ).format(minimum=MINIMUM_TORCH_VERSION, version=torch_version)
    if environment.confirm(question):
        logic = environment.torch_logic()
        torch = logic.installTorch(askConfirmation=True, torchVersionRequirement=f">={MINIMUM_TORCH_VERSION}")
        if torch is not None:
            return DependencyError(
                _("PyTorch {version} was installed. Restart Slicer, then click Segment again.").format(
                    version=environment.installed_version("torch") or ""
                )
            )
    return DependencyError(
        _(
            "PyTorch {version} is too old for UniversalSeg, which needs PyTorch {minimum} or newer; nothing "
            "was installed. Install a newer PyTorch in the 'PyTorch Utils' module (version requirement "
            "'>={minimum}'), restart Slicer, then try again."
        ).format(version=torch_version, minimum=MINIMUM_TORCH_VERSION)
    )


def _monai_requirement(series: list[MonaiSeries], is_satisfied: Callable[[str], bool]) -> str:
    """The series already installed if one fits, else the newest that fits (asked from pip)."""
    for candidate in series:
        if is_satisfied(candidate.requirement):
            return candidate.requirement
    return series[0].requirement


def _cpu_speed_to_install(
    environment: Any,
    device: str,
    speed: str,
    cpu_speed_requirements: list[str],
    offer: bool,
    report: DependencyReport,
    _: Callable[[str], str],
) -> list[str]:
    """The CPU-acceleration requirements to install now for this run (asks the user; empty if none)."""
    if speed == "faithful" or not cpu_speed_requirements:
        return []
    device_type = environment.device_type(device)
    if device_type != "cpu":
        return []
    packages = packages_for_speed(speed, device_type, environment.cpu_has_native_bf16())
    report.cpu_speed_packages = packages
    wanted = [r for r in cpu_speed_requirements if requirement_name(r) in packages]
    missing = [r for r in wanted if not environment.is_satisfied(r)]
    if not missing:
        return []
    names = [requirement_name(r) for r in missing]
    if offer and environment.confirm(install_question(speed, names, download_megabytes(names), _)):
        return missing
    logger.info("CPU-acceleration packages %s not installed: '%s' runs without them", names, speed)
    report.cpu_speed_declined = True
    report.cpu_speed_packages = [name for name in packages if name not in names]
    return []


def _install(
    environment: Any,
    requirements: list[str],
    report: DependencyReport,
    ask_first: bool,
    translate: Callable[[str], str],
) -> str:
    """Install ``requirements`` with the installed PyTorch (and Slicer's packages) pinned; the method used."""
    _ = translate
    report.constraints = pin_constraints(environment.installed_version)
    pip_ensure = environment.pip_ensure()
    with _constraints_file(report.constraints) as constraints:
        if pip_ensure is not None:
            try:
                pip_ensure(
                    requirements, constraints=constraints, prompt_install=ask_first, requester=REQUESTER
                )
            except subprocess.CalledProcessError as error:
                raise _pip_failed(requirements, report, translate) from error
            except RuntimeError as error:  # pip_ensure's "User declined package installation"
                raise _not_installed(requirements, translate) from error
            return "pip_ensure"
        if ask_first and not environment.confirm(_confirm_text(requirements, translate)):
            raise _not_installed(requirements, translate)
        try:
            environment.pip_install(["--constraint", constraints, *requirements])
        except subprocess.CalledProcessError as error:
            raise _pip_failed(requirements, report, translate) from error
        return "pip_install"


@contextlib.contextmanager
def _constraints_file(lines: list[str]) -> Iterator[str]:
    """A temporary pip constraints file with ``lines``; removed afterwards."""
    handle, path = tempfile.mkstemp(prefix="UniversalSeg-constraints-", suffix=".txt")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write("".join(f"{line}\n" for line in lines))
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.remove(path)


def _confirm_text(requirements: list[str], translate: Callable[[str], str]) -> str:
    _ = translate
    return _(
        "UniversalSeg needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
        "Install them now? This can take a few minutes. Your PyTorch is kept as it is."
    ).format(packages="\n".join(requirements))


def _not_installed(requirements: list[str], translate: Callable[[str], str]) -> DependencyError:
    _ = translate
    return DependencyError(
        _("Required Python packages are not installed: {packages}").format(packages=", ".join(requirements))
    )


def _pip_failed(
    requirements: list[str], report: DependencyReport, translate: Callable[[str], str]
) -> DependencyError:
    _ = translate
    return DependencyError(
        _(
            "Installing {packages} failed; PyTorch {torch} was kept. The Python console shows pip's messages "
            "(a package that needs a different PyTorch cannot be installed next to this one)."
        ).format(packages=", ".join(requirements), torch=report.torch_version)
    )


def _check_installed(environment: Any, requirements: list[str], translate: Callable[[str], str]) -> None:
    _ = translate
    still_missing = [r for r in requirements if not environment.is_satisfied(r)]
    if still_missing:
        raise DependencyError(
            _("These Python packages are still missing: {packages}. Restart Slicer and try again.").format(
                packages=", ".join(still_missing)
            )
        )
