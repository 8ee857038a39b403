"""Bounding boxes and the largest 26-connected components of boolean masks, computed in boxes.

The results are those of labelling the whole mask with cc3d and ranking the components by voxel count
(equal counts in cc3d's label order), voxel for voxel; how it stays fast
(``benchmarks/postprocessing_speed.py`` compares it with the first, plain implementation):

- Work happens in boxes, never on full-size temporaries: a mask is cut into pieces separated by empty
  planes (no 26-connected component crosses an empty plane), each piece cropped to its bounding box, and
  the connected components are labelled piece by piece. A full-size array is only written for a result.
- Component sizes are counted from the labels of the foreground voxels only.
- Which components are the largest does not depend on how they are numbered unless two of the sizes that
  decide it are equal. Then, and only then, the components of the whole mask are labelled at once as the
  official code does, and equal sizes keep cc3d's label order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import cc3d
import numpy as np

from ..io.grid import bounding_box, occupied_planes, span

#: Pieces smaller than this are not searched for empty planes (labelling them costs less).
MIN_SPLIT_VOXELS = 32**3
#: At most this many pieces per mask (each costs a cc3d call).
MAX_PIECES = 32

#: Slices of a full-size array, one per axis.
Box = tuple[slice, ...]


class Crop(NamedTuple):
    """Voxels of a full-size mask inside ``box`` (slices of the full array): ``mask`` is ``full[box]``."""

    box: Box
    mask: np.ndarray


# --- boxes ---------------------------------------------------------------------------------------------


def _runs(profile: np.ndarray) -> list[slice]:
    """The runs of consecutive true values of a 1-D boolean array."""
    edges = np.flatnonzero(np.diff(profile, prepend=False, append=False))
    return [slice(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def shifted(box: Box, local: Box) -> Box:
    """``local`` (slices of ``full[box]``) as slices of the full array."""
    return tuple(slice(o.start + s.start, o.start + s.stop) for o, s in zip(box, local, strict=True))


def cropped(mask: np.ndarray) -> Crop | None:
    """``mask`` cropped to its bounding box, ``None`` when empty."""
    box = bounding_box(mask)
    return None if box is None else Crop(box, mask[box])


def whole_crop(mask: np.ndarray) -> Crop:
    """The full array as a crop."""
    return Crop(tuple(slice(0, n) for n in mask.shape), mask)


def _hull(boxes: Sequence[Box]) -> Box:
    """The smallest box holding all ``boxes``."""
    return tuple(
        slice(min(s.start for s in axis), max(s.stop for s in axis)) for axis in zip(*boxes, strict=True)
    )


def union(crops: Sequence[Crop]) -> Crop:
    """The union of ``crops`` (at least one), in their hull; the crop itself when there is one."""
    if len(crops) == 1:
        return crops[0]
    hull = _hull([crop.box for crop in crops])
    merged = np.zeros(tuple(s.stop - s.start for s in hull), dtype=bool)
    for crop in crops:
        merged[
            tuple(slice(s.start - h.start, s.stop - h.start) for s, h in zip(crop.box, hull, strict=True))
        ] |= crop.mask
    return Crop(hull, merged)


def union_crop(first: np.ndarray, second: np.ndarray) -> Crop | None:
    """``first | second`` cropped to its bounding box (the hull of theirs), ``None`` when empty."""
    boxes = [box for box in (bounding_box(first), bounding_box(second)) if box is not None]
    if not boxes:
        return None
    hull = _hull(boxes)
    return Crop(hull, first[hull] | second[hull])


def union_as_official(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``first | second`` cropped to its bounding box, a view of a full-size array as the official code's.

    cc3d numbers components in the memory order of its input: this one gives the official numbering.
    """
    both = first | second
    return both[bounding_box(both)]


def to_full(shape: tuple[int, ...], crops: Sequence[Crop]) -> np.ndarray:
    """A full-size boolean array, true in the ``crops``; only their boxes are written."""
    full = np.zeros(shape, dtype=bool)
    for i, crop in enumerate(crops):
        if i == 0:
            full[crop.box] = crop.mask  # no read of the fresh memory first
        else:
            full[crop.box] |= crop.mask
    return full


def copy_mask(mask: np.ndarray) -> np.ndarray:
    """A copy of ``mask`` that writes only its bounding box (reading costs less than writing)."""
    crop = cropped(mask)
    return to_full(mask.shape, [] if crop is None else [crop])


# --- connected components ------------------------------------------------------------------------------


def _tighten(crop: Crop) -> tuple[Crop, list[np.ndarray]] | None:
    """``crop`` cut to the bounding box of its voxels and the profiles there, ``None`` when empty."""
    profiles = occupied_planes(crop.mask)
    spans = [span(profile) for profile in profiles]
    if any(span is None for span in spans):
        return None
    tight = tuple(spans)  # type: ignore[arg-type]
    return (
        Crop(shifted(crop.box, tight), crop.mask[tight]),
        [profile[span] for profile, span in zip(profiles, tight, strict=True)],
    )


def _groups(profile: np.ndarray, most: int) -> list[slice]:
    """At most ``most`` spans of ``profile`` (tight) holding all its true values, cut at the widest gaps."""
    runs = _runs(profile)
    if len(runs) > most:
        gaps = np.array(
            [after.start - before.stop for before, after in zip(runs[:-1], runs[1:], strict=False)]
        )
        cuts = np.sort(np.argsort(-gaps, kind="stable")[: most - 1])
        firsts = [0, *(cuts + 1)]
        lasts = [*cuts, len(runs) - 1]
        runs = [slice(runs[f].start, runs[l].stop) for f, l in zip(firsts, lasts, strict=True)]
    return runs


def _pieces(crop: Crop) -> list[Crop]:
    """The voxels of ``crop`` cut along empty planes into pieces, each cropped to its bounding box.

    No 26-connected component crosses an empty plane, so each component lies in one piece. Crops smaller
    than :data:`MIN_SPLIT_VOXELS` are not cut, and there are at most :data:`MAX_PIECES` pieces (a noisy
    mask would give thousands).
    """
    pieces: list[Crop] = []
    pending = [crop]
    while pending:
        tightened = _tighten(pending.pop())
        if tightened is None:
            continue
        crop, profiles = tightened
        room = MAX_PIECES - len(pieces) - len(pending)
        if crop.mask.size >= MIN_SPLIT_VOXELS and room > 1:
            for axis, profile in enumerate(profiles):
                groups = _groups(profile, room)
                if len(groups) > 1:
                    for group in groups:
                        local = tuple(
                            group if a == axis else slice(0, n) for a, n in enumerate(crop.mask.shape)
                        )
                        pending.append(Crop(shifted(crop.box, local), crop.mask[local]))
                    break
            else:
                pieces.append(crop)
        else:
            pieces.append(crop)
    return pieces


class _Labelled(NamedTuple):
    """Connected components of a piece: cc3d labels ``1..count`` and their sizes."""

    piece: Crop
    labels: np.ndarray
    sizes: np.ndarray

    def component(self, label: int) -> Crop:
        """Component ``label`` in the piece's box (the piece itself when it is the only one)."""
        if self.sizes.size == 1:
            return self.piece
        return Crop(self.piece.box, self.labels == label)


def _label(piece: Crop) -> _Labelled:
    """26-connected components of a piece; sizes are counted over its foreground voxels only."""
    labels, count = cc3d.connected_components(piece.mask, connectivity=26, return_N=True)
    if count == 1:
        return _Labelled(piece, labels, np.array([np.count_nonzero(piece.mask)]))
    return _Labelled(piece, labels, np.bincount(labels[piece.mask], minlength=count + 1)[1:])


def largest_crops(region: Crop | None, k: int, whole: Callable[[], np.ndarray] | None = None) -> list[Crop]:
    """The ``k`` largest 26-connected components of a mask, largest first (ties: label order).

    ``region`` holds all the voxels of a full-size mask (``None``: it is empty). With equal sizes the
    official code's label order decides: that of cc3d on the mask cropped to its bounding box, a view of
    the full-size array; ``whole()`` is that view when ``region.mask`` is not a view of the mask.
    """
    pieces = _pieces(region) if region is not None and k >= 1 else []
    if not pieces:
        return []
    labelled = [_label(piece) for piece in pieces]
    sizes = np.concatenate([entry.sizes for entry in labelled])
    order = np.argsort(-sizes, kind="stable")
    deciding = sizes[order[: k + 1]]
    if np.any(deciding[1:] == deciding[:-1]):
        assert region is not None
        box = _hull([piece.box for piece in pieces])
        local = tuple(
            slice(s.start - r.start, s.stop - r.start) for s, r in zip(box, region.box, strict=True)
        )
        entry = _label(Crop(box, region.mask[local] if whole is None else whole()))
        order = np.argsort(-entry.sizes, kind="stable")
        return [entry.component(int(label) + 1) for label in order[:k]]
    candidates = [(entry, label) for entry in labelled for label in range(1, entry.sizes.size + 1)]
    return [candidates[i][0].component(candidates[i][1]) for i in order[:k]]


def largest_of_union(first: np.ndarray, second: np.ndarray, k: int) -> list[Crop]:
    """The ``k`` largest 26-connected components of ``first | second`` (ties: the official label order)."""
    return largest_crops(union_crop(first, second), k, whole=lambda: union_as_official(first, second))


def largest_components(mask: np.ndarray, k: int = 1) -> list[np.ndarray]:
    """The ``k`` largest 26-connected components of ``mask``, largest first (ties: label order).

    Each is a full-size boolean array; fewer than ``k`` are returned when there are fewer.
    """
    return [to_full(mask.shape, [component]) for component in largest_crops(whole_crop(mask), k)]


def keep_largest(mask: np.ndarray, k: int = 1) -> np.ndarray:
    """Union of the ``k`` largest 26-connected components of ``mask``."""
    return to_full(mask.shape, largest_crops(whole_crop(mask), k))
