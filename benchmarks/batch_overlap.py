"""A batch with the next CT read AND preprocessed in the background, against read-ahead only.

Runs ``universalseg segment FOLDER -o OUT`` in this process on ``--count`` copies of a CT, twice:

1. ``overlap``: the batch as shipped; the prefetch thread reads and preprocesses the next CT while the
   current one is in the network;
2. ``read-ahead``: the prefetch thread only reads; ``segment`` preprocesses in the foreground (the batch
   before preprocessing moved to the prefetch thread).

The network is a stand-in that sleeps ``--window-ms`` per window and then thresholds the intensities: like
a GPU, it leaves the CPU free while it works, so the figures show what the overlap saves on a GPU machine
without one (an H200 runs a SwinUNETR 96³ window in about 20 ms). Everything else (reading, preprocessing,
sliding window, post-processing, resampling, writing, the manifest) is the real code. The two kinds
alternate ``--repeats`` times; it prints the wall time of each batch, the sum of each stage over its CTs
(from the manifest), the batch's own summary line, and the median wall time of each kind.

Usage::

    python benchmarks/batch_overlap.py [--ct CT] [--count 3] [--window-ms 20] [--roi-size 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CT = REPO_ROOT.parent / "shared" / "data" / "ct" / "totalseg_example" / "example_ct.nii.gz"


class SleepingModel:
    """Sleeps ``seconds`` per window (the CPU stays free, as with a GPU), then thresholds the intensities."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        time.sleep(self.seconds * x.shape[0])
        return (10.0 * (x - 0.5)).repeat(1, len(list(channels or [0])), 1, 1, 1)


def run_batch(folder: Path, out: Path, weights: Path, roi_size: int, overlap: bool) -> float:
    """Wall seconds of one batch run (the model stand-in is already patched in)."""
    from UniversalSegLib.cli import batch
    from UniversalSegLib.cli.batch_loading import CtLoader
    from UniversalSegLib.cli.main import main

    original = batch.CtLoader
    if not overlap:  # read ahead only: segment() preprocesses in the foreground
        batch.CtLoader = functools.partial(CtLoader, preprocess=lambda image, settings: None)
    try:
        command = ["segment", str(folder), "-o", str(out), "--weights", str(weights), "--classes", "liver"]
        command += ["--roi-size", str(roi_size), "--device", "cpu", "--progress", "none"]
        start = time.perf_counter()
        code = main(command)
        seconds = time.perf_counter() - start
    finally:
        batch.CtLoader = original
    if code != 0:
        sys.exit(f"the batch failed with exit code {code}")
    return seconds


def stage_sums(out: Path) -> dict[str, float]:
    """Seconds per stage summed over the CTs of the manifest, and the time the batch waited for them."""
    from UniversalSegLib.cli.batch_figures import STAGES

    sums = dict.fromkeys((*STAGES, "waited"), 0.0)
    for line in (out / "universalseg-manifest.rank0.jsonl").read_text().splitlines():
        entry = json.loads(line)
        for stage, seconds in entry["stage_seconds"].items():
            sums[stage] += seconds
        sums["waited"] += entry["waited_seconds"]
    return sums


class SummaryCatcher(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Batch of"):
            self.lines.append(record.getMessage())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--window-ms", type=float, default=20.0)
    parser.add_argument("--roi-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not args.ct.is_file():
        sys.exit(f"{args.ct} not found: pass --ct")

    from UniversalSegLib.cli import batch

    batch._RankRun._load_model = lambda self, path: SleepingModel(args.window_ms / 1000.0)
    catcher = SummaryCatcher()
    logging.getLogger("UniversalSegLib.cli").addHandler(catcher)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        folder = root / "cts"
        folder.mkdir()
        suffix = "".join(args.ct.suffixes)
        for number in range(args.count):
            shutil.copyfile(args.ct, folder / f"ct{number}{suffix}")
        weights = root / "stand_in.pth"
        weights.write_bytes(b"never loaded")
        run_batch(folder, root / "warm-up", weights, args.roi_size, True)  # imports, first-call costs
        print(f"{args.count} × {args.ct.name}, {args.window_ms:g} ms per window, {args.roi_size}³ windows")
        walls: dict[bool, list[float]] = {False: [], True: []}
        for overlap in (False, True) * args.repeats:
            out = root / f"out-{overlap}-{time.monotonic_ns()}"
            seconds = run_batch(folder, out, weights, args.roi_size, overlap)
            walls[overlap].append(seconds)
            sums = stage_sums(out)
            stages = ", ".join(f"{stage} {value:.2f}" for stage, value in sums.items())
            name = "overlap   " if overlap else "read-ahead"
            print(f"{name} wall {seconds:.2f} s; summed over CTs: {stages}")
            print(f"           {catcher.lines[-1]}")
        ahead, both = (statistics.median(walls[overlap]) for overlap in (False, True))
        print(f"median wall: read-ahead {ahead:.2f} s, overlap {both:.2f} s ({ahead / both:.2f}x)")


if __name__ == "__main__":
    main()
