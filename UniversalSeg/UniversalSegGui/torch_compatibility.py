"""Which MONAI fits the installed PyTorch, and the constraints that keep that PyTorch in place.

The MONAI series and their PyTorch floors come from the wheels' own metadata (``Requires-Dist`` read
from ``pip download --no-deps monai==X``):

=======  ======================  ===============  =================================================
MONAI    torch                   Python           note
=======  ======================  ===============  =================================================
1.3.2    >=1.9                   >=3.8            no ``SwinUNETR`` without ``img_size``: unusable
1.4.0    >=1.9 (numpy<2)         >=3.9            same: ``img_size`` still required, so unusable
1.5.0    >=2.4.1,<2.7            >=3.9            1.5.1 and 1.5.2 drop the upper bound
1.5.2    >=2.4.1                 >=3.9
1.6.1    >=2.8.0                 >=3.10
=======  ======================  ===============  =================================================

Our Swin UNETR backbone builds MONAI's ``SwinUNETR`` without ``img_size``, which MONAI accepts from 1.5
on, so 1.5 is the oldest supported series and PyTorch 2.4.1 (its floor) the oldest usable PyTorch.
Each series is asked for with an upper bound, so a future MONAI that needs a newer PyTorch is never
picked; the constraints file pins the installed PyTorch anyway, so pip fails rather than replace it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

#: The oldest PyTorch that a supported MONAI series works with (MONAI 1.5: ``torch>=2.4.1``).
MINIMUM_TORCH_VERSION = "2.4.1"

#: Packages that are never installed, upgraded or downgraded by us: PyTorch and its companions come from
#: the PyTorch extension, numpy, scipy and SimpleITK with Slicer (5.8: numpy 1.26.4, scipy 1.13.1; 5.12:
#: numpy 2.4.6, scipy 1.17.1). Pinned to the installed versions when present.
PINNED_PACKAGES: tuple[str, ...] = ("torch", "torchvision", "torchaudio", "numpy", "scipy", "SimpleITK")

#: Packages that must never appear in what we ask pip to install.
NEVER_REQUESTED: frozenset[str] = frozenset({"torch", "torchvision", "torchaudio", "simpleitk"})


@dataclass(frozen=True)
class MonaiSeries:
    """One MONAI release series and what it needs.

    Attributes:
        requirement: the requirement asked from pip, with an upper bound (e.g. ``monai>=1.6,<1.7``).
        minimum_torch: the oldest PyTorch it accepts (its ``Requires-Dist: torch>=...``).
        minimum_python: the oldest Python it accepts (its ``Requires-Python``).
    """

    requirement: str
    minimum_torch: str
    minimum_python: tuple[int, int]


#: Supported MONAI series, newest first.
MONAI_SERIES: tuple[MonaiSeries, ...] = (
    MonaiSeries("monai>=1.6,<1.7", "2.8.0", (3, 10)),
    MonaiSeries("monai>=1.5,<1.6", MINIMUM_TORCH_VERSION, (3, 9)),
)


def requirement_name(requirement: str) -> str:
    """The normalized project name of a PEP 508 requirement (``"Torch>=2"`` -> ``"torch"``)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    return canonicalize_name(Requirement(requirement).name)


def torch_is_new_enough(torch_version: str, minimum: str = MINIMUM_TORCH_VERSION) -> bool:
    """Whether ``torch_version`` (e.g. ``"2.6.0+cu124"``) is at least ``minimum``."""
    from packaging.version import Version

    return Version(torch_version) >= Version(minimum)


def compatible_monai_series(torch_version: str, python_version: tuple[int, int]) -> list[MonaiSeries]:
    """The supported MONAI series that work with this PyTorch and Python, newest first."""
    return [
        series
        for series in MONAI_SERIES
        if torch_is_new_enough(torch_version, series.minimum_torch)
        and tuple(python_version) >= series.minimum_python
    ]


def pin_constraints(installed_version: Callable[[str], str | None]) -> list[str]:
    """Constraint lines ``name==version`` for each package of :data:`PINNED_PACKAGES` that is installed."""
    lines = []
    for name in PINNED_PACKAGES:
        version = installed_version(name)
        if version:
            lines.append(f"{name}=={version}")
    return lines


def without_pinned(requirements: Iterable[str]) -> list[str]:
    """``requirements`` without PyTorch, its companions and Slicer's SimpleITK (never asked from pip)."""
    return [
        requirement for requirement in requirements if requirement_name(requirement) not in NEVER_REQUESTED
    ]
