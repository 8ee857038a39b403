"""The Slicer calls that :mod:`UniversalSegGui.dependencies` makes, gathered so tests can replace them."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


class SlicerEnvironment:
    """Slicer, PyTorchUtils, pip and the installed packages, as :func:`ensure_dependencies` sees them."""

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

    def installed_version(self, name: str) -> str | None:
        """The installed version of distribution ``name`` (read from disk, so fresh after an install)."""
        from importlib import metadata

        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    def python_version(self) -> tuple[int, int]:
        return sys.version_info[0], sys.version_info[1]

    def device_type(self, device: str) -> str | None:
        """``cpu``, ``cuda`` or ``mps`` for ``device`` (``auto`` resolved with torch); ``None`` if unknown."""
        if device != "auto":
            return device.split(":", 1)[0]
        try:
            from UniversalSegLib.inference.device import resolve_device

            return resolve_device("auto").type
        except Exception as error:  # a broken torch: do not guess, offer nothing
            logger.warning("Could not detect the compute device: %s", error)
            return None

    def cpu_has_native_bf16(self) -> bool:
        from UniversalSegLib.inference.cpu_features import cpu_has_fast_bf16

        return cpu_has_fast_bf16()

    def pip_ensure(self) -> Callable[..., Any] | None:
        """``slicer.packaging.pip_ensure`` where Slicer has it (5.12 and later, with ``constraints``)."""
        try:
            from slicer import packaging
        except ImportError:
            return None
        return getattr(packaging, "pip_ensure", None)

    def pip_install(self, arguments: list[str]) -> None:
        """``slicer.util.pip_install`` with a list of pip arguments (list items are not re-split, so paths
        with spaces or backslashes survive)."""
        import slicer

        slicer.util.pip_install(arguments)

    def confirm(self, text: str) -> bool:
        import slicer

        return bool(slicer.util.confirmOkCancelDisplay(text, windowTitle="UniversalSeg"))

    def is_satisfied(self, requirement: str) -> bool:
        from UniversalSegGui.installed_requirements import requirement_satisfied

        return requirement_satisfied(requirement)
