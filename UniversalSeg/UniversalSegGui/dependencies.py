"""Install what the engine needs into Slicer's Python, the Slicer way.

- PyTorch only through the PyTorch extension (``PyTorchUtils``), never with pip.
- The other requirements (``Resources/requirements.txt``) with ``slicer.packaging.pip_ensure``
  (Slicer >= 5.12: checks, asks, installs with progress), or after a confirmation dialog with
  ``slicer.util.pip_install`` on older Slicer versions.
- Nothing is installed while Slicer runs its tests (``slicer.app.testingEnabled()``).

The decisions are made by :func:`ensure_dependencies` against a :class:`SlicerEnvironment`, which
tests replace with a fake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MINIMUM_TORCH_VERSION = "2.3"
REQUESTER = "UniversalSeg"
logger = logging.getLogger(__name__)


class DependencyError(RuntimeError):
    """A dependency is missing and was not installed; the message says what to do."""


@dataclass
class DependencyReport:
    """What :func:`ensure_dependencies` did."""

    skipped_for_testing: bool = False
    torch_installed_now: bool = False
    installed: list[str] = field(default_factory=list)
    method: str = ""  # "pip_ensure", "pip_install" or "" (nothing to do)


def read_requirements(path: str | Path) -> list[str]:
    """Requirement lines of a requirements file (comments and blank lines dropped)."""
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def requirement_satisfied(requirement: str) -> bool:
    """Whether an installed distribution satisfies ``requirement`` (PEP 508 string)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    parsed = Requirement(requirement)
    if parsed.marker is not None and not parsed.marker.evaluate():
        return True
    try:
        version = metadata.version(parsed.name)
    except metadata.PackageNotFoundError:
        return False
    return parsed.specifier.contains(version, prereleases=True)


class SlicerEnvironment:
    """The real Slicer calls, gathered so that tests can replace them."""

    def testing_enabled(self) -> bool:
        import slicer

        app = getattr(slicer, "app", None)
        return bool(app is not None and app.testingEnabled())

    def torch_logic(self) -> Any:
        """``PyTorchUtils.PyTorchUtilsLogic()``, or ``None`` without the PyTorch extension."""
        try:
            import PyTorchUtils
        except ImportError:
            return None
        return PyTorchUtils.PyTorchUtilsLogic()

    def pip_ensure(self) -> Callable[..., Any] | None:
        """``slicer.packaging.pip_ensure`` where Slicer has it (5.12 and later)."""
        try:
            from slicer import packaging
        except ImportError:
            return None
        return getattr(packaging, "pip_ensure", None)

    def pip_install(self, requirements: str) -> None:
        import slicer

        slicer.util.pip_install(requirements)

    def confirm(self, text: str) -> bool:
        import slicer

        return bool(slicer.util.confirmOkCancelDisplay(text, windowTitle="UniversalSeg"))

    def is_satisfied(self, requirement: str) -> bool:
        return requirement_satisfied(requirement)


def ensure_torch(environment: Any, minimum_version: str = MINIMUM_TORCH_VERSION) -> bool:
    """Make sure PyTorch is importable; returns True if it was installed now."""
    logic = environment.torch_logic()
    if logic is None:
        raise DependencyError(
            "UniversalSeg needs the PyTorch extension: install 'PyTorch' from the Extensions Manager, "
            "restart Slicer, then try again."
        )
    if logic.torchInstalled():
        return False
    torch = logic.installTorch(askConfirmation=True, torchVersionRequirement=f">={minimum_version}")
    if torch is None:
        raise DependencyError(
            "PyTorch was not installed. Install it with the 'PyTorch Utils' module, then try again."
        )
    return True


def ensure_dependencies(
    requirements: Iterable[str], environment: Any = None, translate: Callable[[str], str] = str
) -> DependencyReport:
    """Check and install the engine's dependencies (see the module docstring for the rules).

    Raises:
        DependencyError: something is missing and the user declined, or the PyTorch extension is absent.
    """
    _ = translate
    environment = environment or SlicerEnvironment()
    requirements = list(requirements)
    report = DependencyReport()
    if environment.testing_enabled():
        logger.info("Testing mode: not installing Python packages")
        report.skipped_for_testing = True
        return report
    report.torch_installed_now = ensure_torch(environment)
    missing = [requirement for requirement in requirements if not environment.is_satisfied(requirement)]
    if not missing:
        return report
    pip_ensure = environment.pip_ensure()
    if pip_ensure is not None:
        pip_ensure(missing, requester=REQUESTER)
        report.method = "pip_ensure"
    else:
        text = _(
            "UniversalSeg needs these Python packages, which are not installed yet:\n\n{packages}\n\n"
            "Install them now? This can take a few minutes."
        ).format(packages="\n".join(missing))
        if not environment.confirm(text):
            raise DependencyError(
                _("Required Python packages are not installed: {packages}").format(
                    packages=", ".join(missing)
                )
            )
        environment.pip_install(" ".join(missing))
        report.method = "pip_install"
    still_missing = [requirement for requirement in missing if not environment.is_satisfied(requirement)]
    if still_missing:
        raise DependencyError(
            _("These Python packages are still missing: {packages}. Restart Slicer and try again.").format(
                packages=", ".join(still_missing)
            )
        )
    report.installed = missing
    return report
