"""Which classes the official post-processing of a selection needs (MODEL_SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable

#: class index -> indices whose raw predictions its official post-processing reads.
POSTPROCESS_DEPENDENCIES: dict[int, frozenset[int]] = {
    10: frozenset({11}),  # portal/splenic vein is cut below the lowest pancreas slice
    16: frozenset({16, 17}),  # lungs are split from the union of both lung channels
    17: frozenset({16, 17}),
    26: frozenset({2, 3}),  # kidney tumor is masked by the dilated kidneys
    27: frozenset({6}),  # liver tumor is masked by the dilated liver
}


def postprocess_requirements(indices: Iterable[int]) -> set[int]:
    """Indices whose predictions the post-processing of ``indices`` needs (may overlap ``indices``).

    Run the model on ``set(indices) | postprocess_requirements(indices)`` and return only ``indices``.
    """
    needed: set[int] = set()
    for index in indices:
        needed |= POSTPROCESS_DEPENDENCIES.get(int(index), frozenset())
    return needed
