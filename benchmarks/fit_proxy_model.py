"""Fit the real architecture to one CT's labels: a stand-in for released weights in fidelity benchmarks.

Released weights cannot be downloaded here, and a random-init model is a poor probe of how much a speed
lever changes the masks: its logits are nearly constant, so any per-window or rounding difference flips
large areas. This script trains a :class:`~UniversalSegLib.model.UniversalModel` (random init, official text
embeddings) for a fixed time on random crops of ``example_ct_sm`` against its TotalSegmentator labels
(17 of our classes), then saves it in UniversalSeg's checkpoint format. The result segments *this* CT
(confident inside organs, uncertain at borders, like a trained model); it is not a general model and is
never distributed. ``benchmarks/speed_modes.py --weights <file>`` then measures fidelity on it.

Example:
    python benchmarks/fit_proxy_model.py --backbone swinunetr --minutes 45 -o /tmp/proxy_swin.pth
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CT_DIR = SHARED_DATA / "ct" / "totalseg_example"
TEXT_EMBEDDINGS = SHARED_DATA / "txt_encoding.pth"
# TotalSegmentator "total" names -> our 1-based class indices (catalog order).
TOTALSEG_TO_CLASS = {
    "spleen": 1,
    "kidney_right": 2,
    "kidney_left": 3,
    "gallbladder": 4,
    "liver": 6,
    "stomach": 7,
    "aorta": 8,
    "inferior_vena_cava": 9,
    "portal_vein_and_splenic_vein": 10,
    "pancreas": 11,
    "adrenal_gland_right": 12,
    "adrenal_gland_left": 13,
    "duodenum": 14,
    "lung_upper_lobe_right": 16,
    "lung_middle_lobe_right": 16,
    "lung_lower_lobe_right": 16,
    "lung_upper_lobe_left": 17,
    "lung_lower_lobe_left": 17,
    "colon": 18,
    "small_bowel": 19,
}


def load_case(ct: Path, seg: Path, names: Path) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The preprocessed CT ``[1, X, Y, Z]``, binary targets ``[C, X, Y, Z]`` and their 0-based channels."""
    from UniversalSegLib.inference.preprocessing import preprocess, preprocess_labels
    from UniversalSegLib.io import read_image

    image = preprocess(read_image(ct))
    labels = preprocess_labels(read_image(seg), image)
    value_names = {int(k): v for k, v in json.loads(names.read_text(encoding="utf-8")).items()}
    channels = sorted(set(TOTALSEG_TO_CLASS.values()))
    target = np.zeros((len(channels), *labels.shape), dtype=np.float32)
    for value, name in value_names.items():
        if name in TOTALSEG_TO_CLASS:
            target[channels.index(TOTALSEG_TO_CLASS[name])][labels == value] = 1.0
    return image.tensor.float(), torch.from_numpy(target), [c - 1 for c in channels]


def random_crop(
    image: torch.Tensor, target: torch.Tensor, size: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A ``size``³ crop (zero-padded where the volume is smaller), centred on foreground 2 times in 3."""
    shape = image.shape[1:]
    if rng.random() < 2 / 3:
        points = torch.nonzero(target.amax(0))
        centre = points[rng.integers(len(points))].tolist()
    else:
        centre = [int(rng.integers(n)) for n in shape]
    starts = [min(max(c - size // 2, 0), max(n - size, 0)) for c, n in zip(centre, shape, strict=True)]
    region = tuple(slice(s, s + size) for s in starts)
    crop_image = torch.zeros(1, size, size, size)
    crop_target = torch.zeros(target.shape[0], size, size, size)
    piece = image[(slice(None), *region)]
    inner = (slice(None), *(slice(0, n) for n in piece.shape[1:]))
    crop_image[inner] = piece
    crop_target[inner] = target[(slice(None), *region)]
    return crop_image, crop_target


def loss_and_dice(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, float]:
    """BCE + soft Dice (per class, present classes only), and the mean hard Dice of present classes."""
    logits = logits.float()
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits)
    dims = (0, 2, 3, 4)
    intersection = (prob * target).sum(dims)
    union = prob.sum(dims) + target.sum(dims)
    present = target.sum(dims) > 0
    soft = 1 - (2 * intersection + 1) / (union + 1)
    dice_loss = soft[present].mean() if present.any() else soft.mean() * 0
    hard = (prob > 0.5).float()
    hard_dice = (2 * (hard * target).sum(dims) / (hard.sum(dims) + target.sum(dims)).clamp(min=1))[present]
    return bce + dice_loss, float(hard_dice.mean()) if present.any() else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", choices=("swinunetr", "unet"), default="swinunetr")
    parser.add_argument("--minutes", type=float, default=40.0, help="training time budget")
    parser.add_argument("--crop", type=int, default=64, help="crop side (a multiple of 32)")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ct", type=Path, default=CT_DIR / "example_ct_sm.nii.gz")
    parser.add_argument("--seg", type=Path, default=CT_DIR / "example_seg.nii.gz")
    parser.add_argument("--label-names", type=Path, default=CT_DIR / "totalsegmentator_total_labels.json")
    parser.add_argument("--init", type=Path, help="continue from this checkpoint (e.g. an earlier output)")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args()

    from UniversalSegLib.model import UniversalModel
    from UniversalSegLib.weights.checkpoint import load_model, save_checkpoint

    if args.output.exists() and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    image, target, channels = load_case(args.ct, args.seg, args.label_names)
    print(f"volume {tuple(image.shape[1:])}, classes {[c + 1 for c in channels]}", flush=True)
    if args.init is not None:
        model = load_model(args.init, backbone=args.backbone).train()
    else:
        model = UniversalModel(args.backbone).train()
        if TEXT_EMBEDDINGS.is_file():  # the official CLIP embeddings, as in the released models
            model.organ_embedding.copy_(torch.load(TEXT_EMBEDDINGS, map_location="cpu").float())
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-5)
    use_bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    deadline = time.monotonic() + 60 * args.minutes
    step, recent = 0, []
    while time.monotonic() < deadline:
        crop, crop_target = random_crop(image, target, args.crop, rng)
        crop = crop * float(rng.uniform(0.95, 1.05))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * min(1.0, (step + 1) / 20)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(crop[None], channels=channels)
        loss, dice = loss_and_dice(logits, crop_target[None])
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            print(f"step {step}: non-finite loss, crop skipped", flush=True)
            continue
        loss.backward()
        if not torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)):
            print(f"step {step}: non-finite gradient, crop skipped", flush=True)
            continue
        optimizer.step()
        step += 1
        recent.append((loss.item(), dice))
        if step % 10 == 0:
            losses, dices = zip(*recent[-10:], strict=True)
            print(f"step {step}: loss {np.mean(losses):.3f}, dice {np.nanmean(dices):.3f}", flush=True)
        if step % 50 == 0:
            save_checkpoint(model.eval(), args.output, overwrite=True)
            model.train()
    save_checkpoint(model.eval(), args.output, overwrite=True)
    print(f"saved {args.output} after {step} steps", flush=True)


if __name__ == "__main__":
    main()
