"""Is one training step of the network repeatable, with and without ``train.deterministic``?

Builds the seeded model twice in one process, runs forward + backward on the same random 64³ input and
compares the outputs and every gradient bit for bit; prints which gradients differ and the seconds of each
pass. Run it once per mode (deterministic mode is process-wide)::

    python benchmarks/training_determinism.py [--backbone swinunetr|unet] [--threads 8] [--deterministic]
        [--device cpu|cuda] [--roi 64]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for ``training``

from training.determinism import deterministic_pooling, enable_deterministic_algorithms  # noqa: E402
from UniversalSegLib.model import UniversalModel  # noqa: E402


def one_pass(
    backbone: str, roi: int, device: torch.device, deterministic: bool
) -> tuple[torch.Tensor, dict, float]:
    torch.manual_seed(0)
    model = UniversalModel(backbone, num_classes=32).to(device)
    if deterministic:
        deterministic_pooling(model)
    image = torch.rand(1, 1, roi, roi, roi, device=device)
    started = time.perf_counter()
    output = model(image)
    output.float().square().mean().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters() if p.grad is not None}
    return output.detach().cpu(), grads, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="swinunetr", choices=["swinunetr", "unet"])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--roi", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.deterministic:
        enable_deterministic_algorithms()
    device = torch.device(args.device)
    first, first_grads, first_s = one_pass(args.backbone, args.roi, device, args.deterministic)
    second, second_grads, second_s = one_pass(args.backbone, args.roi, device, args.deterministic)
    differing = [name for name in first_grads if not torch.equal(first_grads[name], second_grads[name])]
    print(
        f"{args.backbone} {args.roi}^3 on {args.device}, {args.threads} threads, deterministic "
        f"{args.deterministic}: outputs equal {torch.equal(first, second)}, gradients differing "
        f"{len(differing)} {differing[:3]}, passes {first_s:.1f} s / {second_s:.1f} s"
    )


if __name__ == "__main__":
    main()
