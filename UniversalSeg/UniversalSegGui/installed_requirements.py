"""Whether the packages a requirement names are installed in this Python (Slicer's, before or after our
installer runs): standard library and ``packaging`` only, which stock Slicer bundles."""

from __future__ import annotations


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
