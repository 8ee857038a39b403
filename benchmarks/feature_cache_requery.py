"""Asking for more classes of a segmented CT: a fresh run against a re-query, end to end, per speed mode.

For each speed mode, in one run of this script and one isolated UniversalSeg home folder:

1. fresh run: ``universalseg segment CT --classes liver liver_tumor`` (backbone + heads; keeps the image
   features in the feature cache), timed from the start of the process to the written ``.seg.nrrd``;
2. re-query: the same command with ``--classes pancreas portal_splenic_vein`` (the heads of 2 classes
   only), timed the same way;
3. with ``--check``, a fresh run of pancreas and portal vein with ``--no-feature-cache``: its masks must
   equal the re-query's (bit for bit with the default exact storage).

It prints seconds, windows and the fresh / re-query ratio per mode. The weights are the seeded random-init
model in the released layout (the speed does not depend on the values) unless ``--weights`` is given. The
OpenVINO modes convert (``balanced``) or quantize (``fast``) the model in their fresh run, once per home
folder; that time is part of the fresh run, as for a user's first run.

Usage::

    python benchmarks/feature_cache_requery.py [--ct CT] [--backbone unet] [--speeds faithful balanced fast]
        [--threads 2] [--check] [--storage exact|fp16]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CT = REPO_ROOT.parent / "shared" / "data" / "ct" / "totalseg_example" / "example_ct.nii.gz"
FIRST_CLASSES = ("liver", "liver_tumor")
ADDED_CLASSES = ("pancreas", "portal_splenic_vein")


def timed_segment(
    ct: Path, output: Path, weights: Path, speed: str, classes: tuple[str, ...], env: dict, *extra: str
) -> tuple[float, str]:
    """Seconds from process start to written output, and the run's log."""
    command = [sys.executable, "-m", "UniversalSegLib", "segment", str(ct), "-o", str(output)]
    command += ["--weights", str(weights), "--speed", speed, "--classes", *classes, "--progress", "none"]
    start = time.perf_counter()
    done = subprocess.run([*command, *extra], env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def compare_masks(requery: Path, fresh: Path) -> str:
    """``equal`` when two segmentations are identical, else the Dice of each segment (layer value)."""
    import numpy as np
    import SimpleITK as sitk  # noqa: N813

    a = sitk.GetArrayFromImage(sitk.ReadImage(str(requery)))
    b = sitk.GetArrayFromImage(sitk.ReadImage(str(fresh)))
    if a.shape != b.shape:
        return f"DIFFERENT shapes {a.shape} {b.shape}"
    if np.array_equal(a, b):
        return "equal"
    layers_a = a.reshape(-1, a.shape[-1]) if a.ndim == 4 else a.reshape(-1, 1)
    layers_b = b.reshape(-1, b.shape[-1]) if b.ndim == 4 else b.reshape(-1, 1)
    dice = []
    for layer in range(layers_a.shape[1]):
        for value in np.union1d(np.unique(layers_a[:, layer]), np.unique(layers_b[:, layer])):
            if value:
                x, y = layers_a[:, layer] == value, layers_b[:, layer] == value
                dice.append(2 * np.count_nonzero(x & y) / max(1, np.count_nonzero(x) + np.count_nonzero(y)))
    return "Dice " + ", ".join(f"{value:.4f}" for value in dice)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--backbone", choices=("unet", "swinunetr"), default="unet")
    parser.add_argument("--weights", type=Path, help="a real checkpoint (default: random init, seeded)")
    parser.add_argument("--speeds", nargs="+", default=["faithful", "balanced", "fast"])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--check", action="store_true", help="also compare with a fresh run of the new classes"
    )
    parser.add_argument(
        "--storage", choices=("exact", "fp16"), default="exact", help="how the cache keeps fp32 features"
    )
    args = parser.parse_args()

    from UniversalSegLib.testing import write_random_checkpoint

    with tempfile.TemporaryDirectory(prefix="universalseg-requery-") as folder:
        work = Path(folder)
        weights = args.weights or write_random_checkpoint(work / "weights.pth", backbone=args.backbone)
        env = {**os.environ, "UNIVERSALSEG_HOME": str(work / "home"), "OMP_NUM_THREADS": str(args.threads)}
        env["UNIVERSALSEG_FEATURE_CACHE_STORAGE"] = args.storage
        rows = []
        for speed in args.speeds:
            fresh, _ = timed_segment(
                args.ct, work / f"{speed}-first.seg.nrrd", weights, speed, FIRST_CLASSES, env
            )
            requery, log = timed_segment(
                args.ct, work / f"{speed}-added.seg.nrrd", weights, speed, ADDED_CLASSES, env
            )
            if "Reused image features" not in log:
                raise SystemExit(f"{speed}: the re-query did not reuse the image features:\n{log[-3000:]}")
            windows = log.split("Reused image features of an earlier run (")[1].split(" ")[0]
            check = ""
            if args.check:
                timed_segment(
                    args.ct,
                    work / f"{speed}-fresh-added.seg.nrrd",
                    weights,
                    speed,
                    ADDED_CLASSES,
                    env,
                    "--no-feature-cache",
                )
                check = compare_masks(
                    work / f"{speed}-added.seg.nrrd", work / f"{speed}-fresh-added.seg.nrrd"
                )
            rows.append((speed, windows, fresh, requery, fresh / requery, check))
            print(f"{speed}: fresh {fresh:.1f} s, re-query {requery:.1f} s", flush=True)

    print(
        f"\n{args.ct.name}, {args.storage} storage, {args.backbone}, {args.threads} threads; "
        "end to end (process start -> .seg.nrrd)"
    )
    print(f"{'speed':<10}{'windows':>8}{'fresh s':>10}{'re-query s':>12}{'ratio':>8}  masks vs fresh")
    for speed, windows, fresh, requery, ratio, check in rows:
        print(f"{speed:<10}{windows:>8}{fresh:>10.1f}{requery:>12.1f}{ratio:>7.1f}x  {check or '-'}")


if __name__ == "__main__":
    main()
