"""Official post-processing (``postprocess_masks``): the baseline implementation against the current one.

Synthesises 32 realistic boolean masks with a fixed seed (default 288×288×240, the model grid of an
abdomen CT at 1.5 mm): blobby organs, each with a few small spurious components (some near the organ,
some far away, which stretch its bounding box), tumors near their organs, two lungs, the portal vein and
the pancreas. Times the baseline (``postprocessing.py`` at git ref ``--baseline``, loaded into a temporary
module) and the current implementation, alternating for ``--repeats`` rounds after one warm-up each,
asserts that both return identical masks (same keys, order, dtype and voxels) and prints the medians and
their ratio at each ``--threads`` count (the workers of the current implementation; the baseline is
single-threaded).

Usage::

    python benchmarks/postprocessing_speed.py [--shape 288 288 240] [--repeats 5] [--cold 3]
        [--threads 1 2] [--baseline 3587723]

``--cold N`` also times the first call in N fresh processes per implementation (a segmentation run calls
it once, on memory the process has not written yet, so page faults count). CPU seconds are reported next
to wall-clock seconds: on a loaded machine the wall clock of the threaded runs says little.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
from scipy import ndimage

REPO_ROOT = Path(__file__).resolve().parents[1]
MODULE_PATH = "UniversalSegLib/inference/postprocessing.py"
#: The last commit whose post-processing is the original one (three passes per bounding box, full-size
#: component arrays, scipy's 5×5×5 morphology, single-threaded).
DEFAULT_BASELINE = "3587723"

#: Official index -> (centre as fractions of the shape, semi-axes in voxels at 1.5 mm). Axis 0 increases
#: toward the patient's right, axis 2 toward superior (RAS). Empty classes are left out of this table.
ORGANS: dict[int, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    1: ((0.30, 0.40, 0.55), (22, 30, 28)),  # spleen
    2: ((0.68, 0.35, 0.45), (16, 18, 28)),  # right kidney
    3: ((0.32, 0.35, 0.47), (16, 18, 28)),  # left kidney
    4: ((0.62, 0.62, 0.52), (10, 12, 16)),  # gallbladder
    5: ((0.48, 0.45, 0.85), (7, 7, 40)),  # esophagus
    6: ((0.66, 0.55, 0.62), (55, 50, 45)),  # liver
    7: ((0.38, 0.62, 0.62), (30, 25, 28)),  # stomach
    8: ((0.47, 0.40, 0.50), (8, 8, 90)),  # aorta
    9: ((0.55, 0.42, 0.50), (9, 9, 80)),  # inferior vena cava
    10: ((0.52, 0.55, 0.50), (6, 14, 30)),  # portal / splenic vein
    11: ((0.45, 0.52, 0.45), (30, 10, 12)),  # pancreas
    12: ((0.60, 0.38, 0.58), (6, 8, 10)),  # right adrenal gland
    13: ((0.40, 0.38, 0.58), (6, 8, 10)),  # left adrenal gland
    14: ((0.55, 0.58, 0.40), (18, 10, 18)),  # duodenum
    15: ((0.66, 0.55, 0.62), (35, 30, 30)),  # hepatic vessel (sparse, kept raw)
    16: ((0.70, 0.45, 0.88), (45, 55, 40)),  # right lung
    17: ((0.30, 0.45, 0.88), (42, 52, 38)),  # left lung
    18: ((0.50, 0.65, 0.25), (70, 25, 35)),  # colon
    19: ((0.50, 0.68, 0.30), (50, 30, 35)),  # intestine
    20: ((0.50, 0.45, 0.08), (14, 14, 18)),  # rectum
    21: ((0.50, 0.65, 0.06), (20, 18, 14)),  # bladder
    23: ((0.30, 0.50, 0.05), (14, 14, 30)),  # left femur
    24: ((0.70, 0.50, 0.05), (14, 14, 30)),  # right femur
    25: ((0.48, 0.48, 0.52), (4, 6, 5)),  # celiac trunk
    26: ((0.72, 0.33, 0.44), (6, 6, 7)),  # kidney tumor
    27: ((0.70, 0.58, 0.60), (10, 9, 10)),  # liver tumor
    28: ((0.47, 0.53, 0.45), (5, 5, 5)),  # pancreas tumor
    29: ((0.64, 0.50, 0.66), (3, 3, 3)),  # hepatic vessel tumor
    31: ((0.40, 0.70, 0.25), (6, 6, 6)),  # colon tumor
    32: ((0.31, 0.33, 0.50), (4, 4, 4)),  # kidney cyst
}
CLASSES = range(1, 33)


def _blob(rng: np.random.Generator, semi_axes: np.ndarray) -> np.ndarray:
    """A boolean ellipsoid with a smoothly perturbed surface, in its own box."""
    size = np.ceil(2 * semi_axes * 1.3).astype(int) + 2
    grid = np.ogrid[tuple(slice(0, n) for n in size)]
    radius2 = sum(((g - (n - 1) / 2) / a) ** 2 for g, n, a in zip(grid, size, semi_axes, strict=True))
    coarse = rng.standard_normal((6, 6, 6))
    noise = ndimage.zoom(coarse, size / 6, order=1)[tuple(slice(0, n) for n in size)]
    return radius2 < 1 + 0.25 * noise


def _paste(mask: np.ndarray, blob: np.ndarray, centre: np.ndarray) -> None:
    """OR ``blob`` into ``mask`` centred at ``centre`` (clipped at the borders)."""
    start = centre.astype(int) - np.array(blob.shape) // 2
    target, source = [], []
    for s, n, limit in zip(start, blob.shape, mask.shape, strict=True):
        lo, hi = max(s, 0), min(s + n, limit)
        if hi <= lo:
            return
        target.append(slice(lo, hi))
        source.append(slice(lo - s, hi - s))
    mask[tuple(target)] |= blob[tuple(source)]


def synthetic_masks(shape: tuple[int, int, int], seed: int = 0) -> dict[int, np.ndarray]:
    """32 boolean masks (official indices 1..32) that look like a thresholded abdomen CT prediction."""
    rng = np.random.default_rng(seed)
    dims = np.array(shape)
    scale = dims / np.array([288, 288, 240])
    masks = {}
    for index in CLASSES:
        mask = np.zeros(shape, dtype=bool)
        if index in ORGANS:
            fractions, semi_axes = ORGANS[index]
            centre = np.array(fractions) * dims
            axes = np.maximum(np.array(semi_axes) * scale, 2)
            _paste(mask, _blob(rng, axes), centre)
            if index not in (16, 17):
                for _ in range(int(rng.integers(2, 5))):  # spurious bits near the organ
                    offset = rng.uniform(-1.6, 1.6, 3) * axes
                    _paste(mask, _blob(rng, rng.uniform(1.5, 4, 3)), centre + offset)
                for _ in range(int(rng.integers(0, 3))):  # and far away
                    _paste(mask, _blob(rng, rng.uniform(1.5, 3, 3)), rng.uniform(0.05, 0.95, 3) * dims)
        masks[index] = mask
    masks[17] |= masks[16] & (np.arange(shape[0]) < 0.5 * shape[0])[:, None, None]  # the net mixes lungs
    return masks


def load_baseline(ref: str) -> ModuleType:
    """The post-processing module as it was at git ``ref``, imported inside ``UniversalSegLib.inference``."""
    source = subprocess.run(
        ["git", "show", f"{ref}:{MODULE_PATH}"], cwd=REPO_ROOT, check=True, capture_output=True, text=True
    ).stdout
    name = "UniversalSegLib.inference._postprocessing_baseline"
    with tempfile.TemporaryDirectory(prefix="postprocessing_baseline_") as folder:
        path = Path(folder) / "postprocessing_baseline.py"
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


def assert_identical(expected: dict[int, np.ndarray], actual: dict[int, np.ndarray]) -> None:
    assert list(expected) == list(actual), (list(expected), list(actual))
    for index in expected:
        assert actual[index].dtype == expected[index].dtype == bool, index
        assert actual[index].shape == expected[index].shape, index
        assert np.array_equal(actual[index], expected[index]), f"class {index} differs"


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (all threads of this process) of ``function()``."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def implementations(baseline_ref: str, threads: list[int]) -> dict[str, Callable[..., dict]]:
    """``baseline`` and ``new_<n>`` (n worker threads): ``postprocess_masks(masks, warnings)``."""
    from UniversalSegLib.inference.postprocessing import postprocess_masks

    baseline = load_baseline(baseline_ref)
    variants: dict[str, Callable[..., dict]] = {"baseline": baseline.postprocess_masks}
    for n in threads:
        variants[f"new_{n}"] = lambda masks, warnings, n=n: postprocess_masks(masks, warnings, workers=n)
    return variants


def first_call(args: argparse.Namespace) -> None:
    """Child process of ``--cold``: time the first call of one implementation, print JSON."""
    function = implementations(args.baseline, args.threads)[args.first_call]
    masks = synthetic_masks(tuple(args.shape), args.seed)
    wall, cpu = timed(lambda: function(masks, []))
    print(json.dumps({"wall": wall, "cpu": cpu}))


def cold_rounds(args: argparse.Namespace, names: list[str]) -> dict[str, list[tuple[float, float]]]:
    """First-call times, each in a fresh process (as in a segmentation run), alternating."""
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for _ in range(args.cold):
        for name in names:
            command = [sys.executable, __file__, "--first-call", name, "--baseline", args.baseline]
            command += ["--shape", *map(str, args.shape), "--seed", str(args.seed)]
            command += ["--threads", *map(str, args.threads)]
            result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            times[name].append((result["wall"], result["cpu"]))
    return times


def summary(times: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Median wall and CPU seconds per implementation, and the wall-clock ratio baseline / new."""
    result: dict[str, float] = {}
    for name, values in times.items():
        result[f"{name}_s"] = round(statistics.median(wall for wall, _ in values), 3)
        result[f"{name}_cpu_s"] = round(statistics.median(cpu for _, cpu in values), 3)
    for name in times:
        if name != "baseline":
            result[f"ratio_{name}"] = round(result["baseline_s"] / result[f"{name}_s"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[288, 288, 240])
    parser.add_argument("--repeats", type=int, default=5, help="in-process rounds (after a warm-up)")
    parser.add_argument("--cold", type=int, default=0, help="rounds of first calls in fresh processes")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="git ref of the baseline module")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first-call", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.first_call:
        first_call(args)
        return

    variants = implementations(args.baseline, args.threads)
    masks = synthetic_masks(tuple(args.shape), args.seed)
    voxels = sum(int(mask.sum()) for mask in masks.values())
    print(
        f"shape {tuple(args.shape)}, {len(masks)} classes, {voxels} foreground voxels, {os.cpu_count()} CPUs"
    )

    expected_warnings: list[str] = []
    expected = variants["baseline"](masks, expected_warnings)
    for name, function in variants.items():
        warnings: list[str] = []
        assert_identical(expected, function(masks, warnings))  # also the warm-up
        assert warnings == expected_warnings, (name, warnings, expected_warnings)
    print("identical outputs and warnings: yes")

    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, function in variants.items():
            times[name].append(timed(lambda function=function: function(masks, [])))
    print(f"in one process, median of {args.repeats} calls after a warm-up:")
    print(json.dumps(summary(times), indent=2))
    if args.cold:
        print(f"first call in a fresh process, median of {args.cold}:")
        print(json.dumps(summary(cold_rounds(args, list(variants))), indent=2))


if __name__ == "__main__":
    main()
