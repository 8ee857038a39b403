"""The optional CPU-acceleration packages: which speed mode needs which, and how much they download.

The ``balanced`` and ``fast`` modes run on the CPU with OpenVINO, and ``fast`` quantizes the model to int8
with NNCF (where the CPU has native bf16); on a GPU, on Apple MPS and in ``faithful`` they are not used
(:mod:`UniversalSegLib.inference.speed` decides). They are installed only when such a mode is first run,
after the user agreed; without them the engine runs the mode's PyTorch fallback.

Download sizes were measured with ``pip download openvino nncf`` (OpenVINO 2026.4, NNCF 3.4; what they
pull in besides numpy, scipy and PyTorch's own dependencies): OpenVINO 59 MB on Linux x86-64 and 85 MB on
Windows (installed: about 180 MB); NNCF and its dependencies 14 MB (mostly scikit-learn; installed: about
100 MB).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

OPENVINO = "openvino"
NNCF = "nncf"

#: Approximate download in MB per package (with what it pulls in), per ``sys.platform`` where it differs.
_DOWNLOAD_MB: dict[str, dict[str, int]] = {
    OPENVINO: {"win32": 85, "default": 60},
    NNCF: {"default": 14},
}


def packages_for_speed(speed: str, device_type: str, cpu_bf16: bool) -> list[str]:
    """The optional packages (``openvino``, ``nncf``) that ``speed`` uses on a device of ``device_type``.

    Args:
        speed: ``faithful``, ``balanced`` or ``fast``.
        device_type: the resolved device (``cpu``, ``cuda``, ``mps``).
        cpu_bf16: whether the CPU computes bf16 natively (``fast`` quantizes to int8 only there).
    """
    from UniversalSegLib.inference.speed import speed_preset

    preset = speed_preset(speed, device_type, cpu_bf16=cpu_bf16, openvino=True, nncf=True)
    packages = []
    if preset.engine == "openvino":
        packages.append(OPENVINO)
        if preset.precision == "int8":
            packages.append(NNCF)
    return packages


def download_megabytes(packages: Iterable[str], platform: str = sys.platform) -> int:
    """Approximate download size in MB of ``packages`` (names from :func:`packages_for_speed`)."""
    return sum(_DOWNLOAD_MB[name].get(platform, _DOWNLOAD_MB[name]["default"]) for name in packages)


def install_question(speed: str, packages: list[str], megabytes: int, translate=str) -> str:
    """The question asked before downloading the CPU-acceleration packages of ``speed``."""
    _ = translate
    names = {OPENVINO: "OpenVINO", NNCF: "NNCF"}
    return _(
        "The '{speed}' speed mode runs on the CPU with packages that are not installed yet: {packages} "
        "(a download of about {megabytes} MB).\n\n"
        "Install them now?\n\n"
        "If you cancel, '{speed}' runs with PyTorch instead: slower, but nothing is downloaded. "
        "You will be asked again after Slicer restarts."
    ).format(speed=speed, packages=", ".join(names[name] for name in packages), megabytes=megabytes)
