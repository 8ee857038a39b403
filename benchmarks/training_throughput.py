"""Training throughput (crops/s) and peak memory of one optimisation step, per backbone.

CPU: roi 64, fp32. CUDA (when available): roi 96 with bf16 autocast. Each setting runs in its own
process so the peak memory (ru_maxrss on CPU, max_memory_allocated on CUDA) belongs to it alone.

    python benchmarks/training_throughput.py [--iterations 3] [--batch 2] [--backbones unet swinunetr]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for ``training``


def measure(backbone: str, device: str, roi: int, batch: int, iterations: int, amp: bool) -> dict:
    """Time ``iterations`` training steps (after one warm-up step) on random data."""
    from training.losses import PartialLabelLoss
    from UniversalSegLib.model import UniversalModel

    torch.manual_seed(0)
    target_device = torch.device(device)
    model = UniversalModel(backbone).to(target_device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-5)
    loss_fn = PartialLabelLoss()
    image = torch.rand(batch, 1, roi, roi, roi, device=target_device)
    target = (torch.rand(batch, 32, roi, roi, roi, device=target_device) > 0.9).to(torch.uint8)
    annotated = torch.zeros(batch, 32, dtype=torch.bool, device=target_device)
    annotated[:, :14] = True  # a BTCV-like dataset
    autocast = torch.autocast(target_device.type, dtype=torch.bfloat16, enabled=amp)

    def step() -> None:
        with autocast:
            logits = model(image)
        loss, _ = loss_fn(logits.float(), target, annotated)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()
    if target_device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if target_device.type == "cuda":
        torch.cuda.synchronize()
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    seconds = time.perf_counter() - start
    return {
        "backbone": backbone, "device": device, "roi": roi, "batch": batch, "amp": "bf16" if amp else "fp32",
        "iterations": iterations, "s_per_step": seconds / iterations,
        "crops_per_s": batch * iterations / seconds, "peak_memory_mib": peak_mib,
        "threads": torch.get_num_threads(),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2, help="crops per step")
    parser.add_argument("--backbones", nargs="+", default=["unet", "swinunetr"])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="which of cpu/cuda to run")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(**json.loads(args.child))))
        return 0
    settings = [{"device": "cpu", "roi": 64, "amp": False}] if "cpu" in args.devices else []
    if torch.cuda.is_available() and "cuda" in args.devices:
        settings.append({"device": "cuda", "roi": 96, "amp": True})
    print(
        f"{'backbone':>10} {'device':>6} {'roi':>4} {'amp':>5} {'s/step':>8} {'crops/s':>8} {'peak MiB':>9}"
    )
    for setting in settings:
        for backbone in args.backbones:
            child = {**setting, "backbone": backbone, "batch": args.batch, "iterations": args.iterations}
            output = subprocess.run(
                [sys.executable, __file__, "--child", json.dumps(child)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            r = json.loads(output.strip().splitlines()[-1])
            print(f"{r['backbone']:>10} {r['device']:>6} {r['roi']:>4} {r['amp']:>5} {r['s_per_step']:>8.2f} "
                  f"{r['crops_per_s']:>8.3f} {r['peak_memory_mib']:>9.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
