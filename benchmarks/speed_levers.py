"""Per-window cost of the speed levers (bf16, channels_last_3d, torch.compile, OpenVINO) on this machine.

One window cut from a real CT (preprocessed the official way) runs through the real ``UniversalModel``
(seeded random init) with each lever, in one process, the levers interleaved round by round so the ratios
share the same machine load (after one warm-up pass per lever).
Fidelity is measured against the fp32 forward of the same window: max |Δ logit|,
max |Δ probability| and the share of voxels whose ``sigmoid > 0.5`` decision flips (random weights:
a pessimistic proxy, the logits sit close to 0).

Usage::

    python benchmarks/speed_levers.py [--backbones swinunetr unet] [--size 96] [--runs 3] [--compile]
        [--openvino] [--torch-only-basics]

``--openvino`` adds the OpenVINO engine (encoder compiled by OpenVINO in f32 and bf16, the text heads in
PyTorch; the one-off conversion is reported, not timed in the rounds). ``--torch-only-basics`` leaves out
the channels_last_3d levers (which did not pay) to shorten the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CT = REPO_ROOT.parent / "shared" / "data" / "ct" / "totalseg_example" / "example_ct_sm.nii.gz"


def real_window(ct: Path, size: int) -> torch.Tensor:
    """A ``[1, 1, size, size, size]`` window from the centre of the preprocessed CT (zero-padded)."""
    from UniversalSegLib.inference.preprocessing import preprocess
    from UniversalSegLib.io import read_image

    volume = preprocess(read_image(ct)).tensor[0]
    window = torch.zeros(size, size, size)
    starts = [max(0, (n - size) // 2) for n in volume.shape]
    piece = volume[tuple(slice(s, s + size) for s in starts)]
    window[tuple(slice(0, n) for n in piece.shape)] = piece
    return window[None, None]


#: 0-based channels of the 8 organs speed_modes.py segments (spleen, kidneys, liver, stomach, aorta, IVC,
#: pancreas): the per-class heads run in PyTorch in every lever, so their number matters.
CHANNELS = [0, 1, 2, 5, 6, 7, 8, 10]


def forward(model: torch.nn.Module, x: torch.Tensor, precision: str) -> tuple[float, torch.Tensor]:
    """Seconds of one forward pass (8 classes) and its float32 logits."""
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )
    with torch.inference_mode(), autocast:
        start = time.perf_counter()
        out = model(x, channels=CHANNELS)
        seconds = time.perf_counter() - start
    return seconds, out.float()


def fidelity(reference: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    ref_p, other_p = torch.sigmoid(reference), torch.sigmoid(other)
    return {
        "max_abs_dlogit": float((reference - other).abs().max()),
        "max_abs_dprob": float((ref_p - other_p).abs().max()),
        "flipped": float(((ref_p > 0.5) != (other_p > 0.5)).float().mean()),
    }


def openvino_levers(model: torch.nn.Module, size: int, cache: Path) -> tuple[dict, dict]:
    """OpenVINO f32 and bf16 predictors of ``model`` (levers) and the conversion time (extra)."""
    from UniversalSegLib.inference.engines.openvino_encoder import compiled_encoder
    from UniversalSegLib.inference.engines.openvino_engine import OpenVINOPredictor

    start = time.perf_counter()
    compiled = {p: compiled_encoder(model, [size] * 3, p, cache_dir=cache) for p in ("fp32", "bf16")}
    convert_s = time.perf_counter() - start
    levers = {f"OpenVINO {p}": (OpenVINOPredictor(model, compiled[p]), "fp32") for p in ("fp32", "bf16")}
    return levers, {"OpenVINO fp32": {"compile_s": convert_s}}


def measure(
    backbone: str, x: torch.Tensor, runs: int, use_compile: bool, use_openvino: bool, channels_last: bool
) -> list[dict]:
    """Levers timed in interleaved rounds (so a change of machine load hits every lever alike)."""
    with contextlib.ExitStack() as stack:
        return _measure(stack, backbone, x, runs, use_compile, use_openvino, channels_last)


def _measure(
    stack: contextlib.ExitStack,
    backbone: str,
    x: torch.Tensor,
    runs: int,
    use_compile: bool,
    use_openvino: bool,
    channels_last: bool,
) -> list[dict]:
    from UniversalSegLib.model import UniversalModel

    torch.manual_seed(0)
    model = UniversalModel(backbone).eval()
    levers = {
        "fp32 (reference)": (model, x, "fp32"),
        "bf16 autocast": (model, x, "bf16"),
    }
    if channels_last:
        cl_x = x.contiguous(memory_format=torch.channels_last_3d)
        levers["channels_last_3d fp32"] = (model, cl_x, "fp32")
        levers["channels_last_3d + bf16"] = (model, cl_x, "bf16")
    extra: dict[str, dict] = {}
    if use_openvino:
        cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="speed_levers_openvino_")))
        ov_levers, ov_extra = openvino_levers(model, x.shape[-1], cache)
        levers.update({name: (net, x, precision) for name, (net, precision) in ov_levers.items()})
        extra.update(ov_extra)
    if use_compile:
        compiled = torch.compile(model)
        start = time.perf_counter()
        forward(compiled, x, "fp32")
        extra["torch.compile fp32"] = {"compile_s": time.perf_counter() - start}
        levers["torch.compile fp32"] = (compiled, x, "fp32")
    times: dict[str, list[float]] = {name: [] for name in levers}
    outputs: dict[str, torch.Tensor] = {}
    for net, inp, precision in levers.values():  # warm-up: oneDNN primitives per shape and dtype
        forward(net, inp, precision)
    for _ in range(runs):
        for name, (net, inp, precision) in levers.items():
            seconds, outputs[name] = forward(net, inp, precision)
            times[name].append(seconds)
    base = outputs["fp32 (reference)"]
    rows = []
    for name, samples in times.items():
        samples.sort()
        rows.append(
            {
                "backbone": backbone,
                "lever": name,
                "seconds": samples[len(samples) // 2],
                **extra.get(name, {}),
                **fidelity(base, outputs[name]),
            }
        )
    for row in rows:
        row["speedup"] = rows[0]["seconds"] / row["seconds"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", nargs="+", default=["swinunetr", "unet"])
    parser.add_argument("--runs", type=int, default=3, help="interleaved timed rounds (median)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow to compile)")
    parser.add_argument("--openvino", action="store_true", help="also time the OpenVINO engine (f32, bf16)")
    parser.add_argument("--torch-only-basics", action="store_true", help="leave out channels_last_3d")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    x = real_window(args.ct, args.size)
    rows = []
    for backbone in args.backbones:
        rows += measure(backbone, x, args.runs, args.compile, args.openvino, not args.torch_only_basics)
    print(f"{'backbone':<10} {'lever':<26} {'s/window':>9} {'speed-up':>9} {'max|Δp|':>9} {'flipped':>9}")
    for row in rows:
        print(
            f"{row['backbone']:<10} {row['lever']:<26} {row['seconds']:>9.2f} {row['speedup']:>8.2f}x "
            f"{row['max_abs_dprob']:>9.4f} {row['flipped']:>9.4%}"
            + (f"  (compile/convert {row['compile_s']:.0f} s)" if "compile_s" in row else "")
        )
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
