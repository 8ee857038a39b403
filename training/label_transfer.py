"""Label transfer: dataset label values -> multi-channel universal targets (MODEL_SPEC §4).

Arrays are in RAS index order (first axis increases toward patient Right). The raw label is first
turned into a *combination map*: each id stands for a set of universal classes, so one integer volume
can be resampled with nearest-neighbour and expanded to channels afterwards.
"""

from __future__ import annotations

import cc3d
import numpy as np

NOT_ANNOTATED = 255


def split_left_right(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a paired organ mask into (right, left) halves.

    The two largest 26-connected components are the two organs; the one whose mean first-axis
    (RAS x) index is smaller is the left one. Smaller components go to the side whose main
    component is nearer in x. A single component is left if its mean x lies below the volume centre.
    """
    mask = np.asarray(mask, dtype=bool)
    right, left = np.zeros_like(mask), np.zeros_like(mask)
    if not mask.any():
        return right, left
    components, count = cc3d.connected_components(mask, connectivity=26, return_N=True)
    labels = np.arange(1, count + 1)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[1:]
    x_index = np.arange(mask.shape[0]).reshape((-1,) + (1,) * (mask.ndim - 1))
    x_sums = np.bincount(components.ravel(), weights=np.broadcast_to(x_index, mask.shape).ravel())[1:]
    x_means = x_sums / np.maximum(sizes, 1)
    order = labels[np.argsort(-sizes, kind="stable")]
    if count == 1:
        target = left if x_means[0] < (mask.shape[0] - 1) / 2 else right
        target |= mask
        return right, left
    first, second = order[0], order[1]
    left_label, right_label = (first, second) if x_means[first - 1] < x_means[second - 1] else (second, first)
    left_x, right_x = x_means[left_label - 1], x_means[right_label - 1]
    left_labels = [lab for lab in labels if abs(x_means[lab - 1] - left_x) < abs(x_means[lab - 1] - right_x)]
    left_labels = set(left_labels) | {left_label}
    left_labels.discard(right_label)
    left = np.isin(components, list(left_labels))
    right = mask & ~left
    return right, left


def combination_map(
    label: np.ndarray,
    label_map: dict[int, list[int]],
    rl_split: list[tuple[int, int]] = (),
) -> tuple[np.ndarray, dict[int, frozenset[int]]]:
    """Map raw label values to combination ids, applying the left/right split.

    Args:
        label: integer label volume in RAS order.
        label_map: raw value -> universal class indices (a voxel can belong to several classes).
        rl_split: (right index, left index) pairs; voxels of the right class are split in two.

    Returns:
        (combination map int32, id -> set of class indices). Id 0 is background.
    """
    label = np.asarray(label)
    values = np.unique(label)
    combos: dict[int, frozenset[int]] = {0: frozenset()}
    combo = np.zeros(label.shape, dtype=np.int32)
    ids: dict[frozenset[int], int] = {frozenset(): 0}
    for value in values.tolist():
        classes = frozenset(label_map.get(int(value), ()))
        if not classes:
            continue
        combo_id = ids.setdefault(classes, len(ids))
        combos[combo_id] = classes
        combo[label == value] = combo_id
    for right, left in rl_split:
        holders = [cid for cid, classes in combos.items() if right in classes]
        if not holders:
            continue
        _, left_mask = split_left_right(np.isin(combo, holders))
        for cid in holders:
            moved = frozenset((combos[cid] - {right}) | {left})
            new_id = ids.setdefault(moved, len(ids))
            combos[new_id] = moved
            combo[left_mask & (combo == cid)] = new_id
    return combo, combos


def expand_target(
    combo: np.ndarray,
    combos: dict[int, frozenset[int]],
    annotated: list[int],
    num_classes: int,
) -> np.ndarray:
    """Turn a combination map into a uint8 target [C, ...]: 0/1 for annotated classes, 255 otherwise."""
    target = np.full((num_classes, *combo.shape), NOT_ANNOTATED, dtype=np.uint8)
    combo = np.asarray(combo).astype(np.int64)
    for index in annotated:
        lookup = np.array([index in combos.get(i, ()) for i in range(int(combo.max()) + 1)], dtype=np.uint8)
        target[index - 1] = lookup[combo]
    return target
