"""No data leaves the machine: switch off the usage telemetry of the libraries we call.

OpenVINO's model conversion (``openvino.convert_model``) and NNCF's ``quantize`` report usage through the
``openvino-telemetry`` package unless the user opted out: it writes a client id and a usage counter under
``~/intel`` (``%LOCALAPPDATA%\\Intel Corporation`` on Windows) and sends events to Google Analytics. Both
libraries fall back to a no-op stub when that package cannot be imported, so before either is imported it
is made unimportable in this process. When something imported it first, the loaded package is told that
the user declined instead (the answer its opt-out file would give), so it neither writes nor sends.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)

TELEMETRY_PACKAGE = "openvino_telemetry"


def disable_third_party_telemetry() -> None:
    """Make every later OpenVINO/NNCF call in this process write no telemetry file and send nothing.

    Call it before ``openvino`` or ``nncf`` is imported (as
    :func:`~UniversalSegLib.inference.errors.import_optional` does); calling it again is cheap. Child
    processes run our own code, which calls it too.
    """
    if sys.modules.get(TELEMETRY_PACKAGE, None) is None:
        sys.modules[TELEMETRY_PACKAGE] = None  # type: ignore[assignment]  # `import` now raises ImportError
        return
    _decline_loaded_telemetry()


def _decline_loaded_telemetry() -> None:
    """The package was imported before us: answer "declined" to its consent check from now on."""
    try:
        from openvino_telemetry import Telemetry
        from openvino_telemetry.utils.opt_in_checker import ConsentCheckResult, OptInChecker
    except ImportError as error:  # an unknown layout: say so rather than pretend
        logger.warning("could not switch off OpenVINO telemetry (%s); run `opt_in_out --opt_out`", error)
        return

    def declined(self, enable_opt_in_dialog, disable_in_ci=False):  # noqa: ANN001, ARG001 (their signature)
        return ConsentCheckResult.DECLINED

    OptInChecker.check = declined  # type: ignore[method-assign]
    instance = getattr(Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False
