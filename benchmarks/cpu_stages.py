"""The CPU side of a GPU run: every stage of file → ``.seg.nrrd`` but the network, for two code versions.

On a GPU the network of a 48-window CT takes about a second, so reading, preprocessing, post-processing,
resampling and writing decide whether the whole run fits in a few seconds (issue #13 measured 1.5 s of
preprocessing, 5.2 s of post-processing and 0.4 s of resampling on 2 cores for an 80-window CT). This
script measures those stages on the CPU with the network replaced by an instant stand-in, for this
checkout and, with ``--vs OTHER_CHECKOUT``, for another version of the code (say a ``git worktree`` of an
older commit), alternating the two in fresh processes so that both see the same machine load.

The CT is ``synthetic_ct.py``'s abdomen (48 or 80 windows of 96³ at overlap 0.5). The stand-in network
returns, for class ``k``, a logit that is positive where the window's 5×5×5-smoothed intensity lies in a
band of class ``k`` (fat, soft tissue, tumour, spleen, liver, kidney, aorta or bone, cycled over the 32
classes): organ-shaped masks of realistic extent with partial-volume shells at their borders, so the
post-processing rules (largest components, lung and kidney splits, tumour-in-organ checks) do real work.
Each process first segments a one-window CT untimed (imports, first calls), then the CT ``--runs`` times;
the medians are reported. ``inference`` (the sliding window with the stand-in: MONAI's window loop and
the blending of all 32 channels, on the CPU here) is printed but left out of the CPU-side total, because on
a GPU that work runs on the GPU.

Usage::

    python benchmarks/cpu_stages.py [--windows 48 80] [--runs 3] [--threads 2] [--vs ../old_checkout]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Stages of file → .seg.nrrd timed here; the CPU-side total leaves ``inference`` out (GPU work).
STAGES = ("read", "preprocess", "inference", "postprocess", "resample", "write")
CPU_SIDE = ("read", "preprocess", "postprocess", "resample", "write")
#: Normalised intensities (preprocessing maps -175..250 HU to 0..1) of the synthetic CT's tissues.
BANDS = (
    ("fat", (-100 + 175) / 425),
    ("soft tissue", (40 + 175) / 425),
    ("tumour", (25 + 175) / 425),
    ("spleen", (50 + 175) / 425),
    ("liver", (60 + 175) / 425),
    ("kidney", (150 + 175) / 425),
    ("aorta", (180 + 175) / 425),
    ("bone", 1.0),
)
BAND_HALF_WIDTH = 0.012
#: A one-window CT each process segments once, untimed, before its timed runs (imports, first calls).
WARM_UP_CT = "warm_up_1_window.nii.gz"


class BandStandIn:
    """An instant network: class ``k``'s logit is positive where the smoothed window lies in its band."""

    def __call__(self, x, channels: Sequence[int] | None = None):
        import torch
        import torch.nn.functional as functional

        indices = list(channels) if channels is not None else list(range(32))
        smooth = functional.avg_pool3d(x, 5, stride=1, padding=2, count_include_pad=False)
        centres = torch.tensor([centre for _, centre in BANDS], dtype=x.dtype).view(1, -1, 1, 1, 1)
        bands = 200.0 * (BAND_HALF_WIDTH - (smooth - centres).abs())  # [B, 8, D, H, W]
        return bands[:, [index % len(BANDS) for index in indices]]


def run_stages(ct: Path, output: Path, threads: int) -> dict[str, float]:
    """Seconds per stage of one ``read_image`` → ``segment`` → ``write_segmentation_nrrd`` run."""
    from end_to_end import file_to_segmentation

    from UniversalSegLib.inference import InferenceOptions

    options = InferenceOptions(device="cpu", threads=threads)  # the official settings: 96³, overlap 0.5
    seconds, result = file_to_segmentation(ct, BandStandIn(), range(1, 33), options, output)
    return {**{stage: seconds[stage] for stage in STAGES}, "windows": float(result.windows)}


def child(args: argparse.Namespace) -> None:
    """Runs in a fresh process with ``--repo``'s UniversalSegLib first on the path; prints JSON."""
    sys.path.insert(0, str(Path(args.repo).resolve()))
    import UniversalSegLib

    imported = Path(UniversalSegLib.__file__).resolve()
    if Path(args.repo).resolve() not in imported.parents:
        raise SystemExit(f"imported {imported}, not the checkout {args.repo}")
    output = Path(args.work) / f"out-{os.getpid()}.seg.nrrd"
    run_stages(Path(args.warm_up_ct), output, args.threads)  # untimed: imports and first calls
    runs = [run_stages(Path(args.ct), output, args.threads) for _ in range(args.runs)]
    output.unlink(missing_ok=True)
    print(json.dumps(runs))


def measure(repo: Path, ct: Path, work: Path, runs: int, threads: int) -> list[dict[str, float]]:
    """``runs`` timed runs of ``repo``'s code in a fresh process."""
    command = [
        sys.executable, __file__, "--child", "--repo", str(repo), "--ct", str(ct), "--work", str(work),
        "--warm-up-ct", str(work / WARM_UP_CT), "--runs", str(runs), "--threads", str(threads),
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(repo)}
    for attempt in (1, 2):  # a child that dies at start-up (a loader hiccup on a busy machine) is run again
        done = subprocess.run(command, capture_output=True, text=True, env=environment, check=False)
        if done.returncode == 0:
            return json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{repo}: child failed (attempt {attempt}):\n{done.stderr[-3000:]}", file=sys.stderr, flush=True
        )
    raise SystemExit(f"{repo}: the child failed twice; see above")


def medians(runs: list[dict[str, float]]) -> dict[str, float]:
    """Median seconds per stage, and of the CPU-side total, over ``runs``."""
    figures = {stage: statistics.median(run[stage] for run in runs) for stage in STAGES}
    figures["cpu side"] = statistics.median(sum(run[stage] for stage in CPU_SIDE) for run in runs)
    return figures


def table(figures: dict[int, dict[str, dict[str, float]]]) -> str:
    """A markdown table of ``figures[windows][version]`` (from :func:`medians`); with two versions, a row of
    the second's seconds over the first's per stage (above 1: the first is faster)."""
    lines = [
        "| CT windows | code | " + " | ".join(STAGES) + " | **CPU side** (all but inference) |",
        "|---" * (len(STAGES) + 3) + "|",
    ]
    for windows, versions in figures.items():
        for name, stages in versions.items():
            cells = " | ".join(f"{stages[stage]:.2f}" for stage in STAGES)
            lines.append(f"| {windows} | {name} | {cells} | **{stages['cpu side']:.2f}** |")
        if len(versions) == 2:
            (first, mine), (second, theirs) = versions.items()
            ratios = " | ".join(
                f"{theirs[stage] / max(mine[stage], 1e-9):.2f}×" for stage in (*STAGES, "cpu side")
            )
            lines.append(f"| {windows} | {second} ÷ {first} | {ratios} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, nargs="+", default=[48, 80])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per process (median)")
    parser.add_argument("--rounds", type=int, default=2, help="processes per version, alternating")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--vs", type=Path, help="another checkout to measure beside this one")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repo", default=str(REPO_ROOT), help=argparse.SUPPRESS)
    parser.add_argument("--ct", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up-ct", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic_ct import write_synthetic_ct

    versions = {"this checkout": REPO_ROOT}
    if args.vs is not None:
        versions["--vs"] = args.vs.resolve()
    figures: dict[int, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="cpu_stages_") as work:
        write_synthetic_ct(Path(work) / WARM_UP_CT, 1)
        for windows in args.windows:
            ct = write_synthetic_ct(Path(work) / f"abdomen_{windows}.nii.gz", windows)
            print(f"{windows} windows: {ct.size} voxels, grid {ct.grid}", file=sys.stderr, flush=True)
            collected: dict[str, list[dict[str, float]]] = {name: [] for name in versions}
            for _ in range(args.rounds):
                for name, repo in versions.items():
                    collected[name] += measure(repo, ct.path, Path(work), args.runs, args.threads)
            figures[windows] = {name: medians(runs) for name, runs in collected.items()}
    print(table(figures))


if __name__ == "__main__":
    main()
