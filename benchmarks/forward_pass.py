"""CPU time and peak memory of one 96³ forward pass per backbone, compared with the official figures.

Each backbone runs in a fresh subprocess (so peak RSS is its own): 1 warm-up pass, then ``--runs`` timed
passes of ``UniversalModel`` (eval, no_grad, ``torch.rand(1, 1, 96, 96, 96)``, torch threads = CPU cores).
The official medians come from ``../shared/spec/universal_model_summary.json`` (measured on a 2-core CPU
with torch 2.13 / monai 0.9.0). With ``--official-src`` and ``--official-python`` (a checkout of the
official repository and a Python that can import it), the official model is timed in the same run too.

Usage::

    python benchmarks/forward_pass.py [--runs 3] [--size 96] [--official-src DIR --official-python PY]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SUMMARY = REPO_ROOT.parent / "shared" / "spec" / "universal_model_summary.json"
BACKBONES = ("unet", "swinunetr")

# Runs in a subprocess; prints one JSON line. ``{model}`` builds the model to time.
_WORKER = """
import json, os, resource, statistics, sys, time
import torch
torch.set_num_threads(os.cpu_count() or 1)
{imports}
model = {model}
model.eval()
x = torch.rand(1, 1, {size}, {size}, {size})
times = []
with torch.no_grad():
    for index in range({runs} + 1):
        start = time.perf_counter()
        model(x)
        if index:
            times.append(time.perf_counter() - start)
peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"runs_s": times, "median_s": statistics.median(times), "peak_rss_mib": peak_kib / 1024,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}}))
"""


def _run_worker(python: str, imports: str, model: str, size: int, runs: int, cwd: Path) -> dict:
    code = _WORKER.format(imports=imports, model=model, size=size, runs=runs)
    result = subprocess.run([python, "-c", code], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_ours(backbone: str, size: int, runs: int) -> dict:
    imports = "from UniversalSegLib.model import UniversalModel"
    return _run_worker(sys.executable, imports, f"UniversalModel({backbone!r})", size, runs, REPO_ROOT)


def time_official(backbone: str, size: int, runs: int, source: Path, python: str) -> dict:
    imports = "sys.path.insert(0, os.getcwd())\nfrom model.Universal_model import Universal_model"
    model = (
        f"Universal_model(img_size=({size},) * 3, in_channels=1, out_channels=32, backbone={backbone!r}, "
        "encoding='word_embedding')"
    )
    return _run_worker(python, imports, model, size, runs, source)


def official_reference() -> dict:
    if not SUMMARY.is_file():
        return {}
    return json.loads(SUMMARY.read_text()).get("cpu_forward_timing_96cube", {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs after one warm-up (default 3)")
    parser.add_argument("--size", type=int, default=96, help="cube side of the input (default 96)")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    parser.add_argument("--official-src", type=Path, help="checkout of the official repository (optional)")
    parser.add_argument("--official-python", help="Python able to import the official code (optional)")
    args = parser.parse_args(argv)

    reference = official_reference()
    print(f"CPU cores: {os.cpu_count()}, input 1x1x{args.size}^3, 1 warm-up + {args.runs} timed runs")
    if reference:
        print(f"official reference: {reference.get('machine', '?')}")
    for backbone in args.backbones:
        ours = time_ours(backbone, args.size, args.runs)
        line = (
            f"{backbone:10s} ours: median {ours['median_s']:.2f} s (runs "
            f"{', '.join(f'{t:.2f}' for t in ours['runs_s'])}), peak RSS {ours['peak_rss_mib']:.0f} MiB, "
            f"threads {ours['threads']}, torch {ours['torch']}"
        )
        official_median = reference.get(backbone, {}).get("median_s")
        if official_median and args.size == 96:
            line += f"\n{'':10s} official (spec, other machine): {official_median:.2f} s"
            line += f" -> ratio ours/official {ours['median_s'] / official_median:.2f}"
        if args.official_src and args.official_python:
            official = time_official(backbone, args.size, args.runs, args.official_src, args.official_python)
            line += (
                f"\n{'':10s} official (this run): median {official['median_s']:.2f} s, peak RSS "
                f"{official['peak_rss_mib']:.0f} MiB, torch {official['torch']}"
                f" -> ratio ours/official {ours['median_s'] / official['median_s']:.2f}"
            )
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
