"""Speed modes side by side on a real CT: time, memory and fidelity against ``faithful``, in one run.

Each mode runs ``segment`` in a fresh child process (so peak RSS / GPU memory is that mode's own), timed
end to end inside the child: read the image → masks on the input grid. The child saves the float16
probabilities of the selected classes (model grid) and the masks (input grid); the parent compares every
mode with ``faithful`` and prints one table:

mode, settings, windows, end-to-end seconds, speed-up vs faithful, share of time outside the network,
peak RSS (and peak GPU memory on CUDA), max |Δ probability|, min / mean per-class Dice of the masks, and
the fraction of voxels that differ (over all selected classes).

Weights: ``--weights`` for a real checkpoint; otherwise the seeded random-init model with a per-class
affine calibration of the logits (measured once on the CT's centre window at fp32) so that the masks have
spatial structure (about 30% of voxels > 0.5) instead of being all-on or all-off. The calibration is the
same in every mode, so the differences come from the mode alone.

Usage::

    python benchmarks/speed_modes.py [--ct CT] [--backbone swinunetr] [--modes faithful balanced fast]
        [--device cpu|cuda] [--resample-mm 0.8] [--classes 1 2 3 6 7 8 9 11] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # UniversalSegLib without an install (device machines)
DEFAULT_CT = REPO_ROOT.parent / "shared" / "data" / "ct" / "totalseg_example" / "example_ct_sm.nii.gz"
#: spleen, kidney R/L, liver, stomach, aorta, IVC, pancreas: the organs TotalSegmentator labels in the CT.
DEFAULT_CLASSES = (1, 2, 3, 6, 7, 8, 9, 11)
POSITIVE_SHARE = 0.3
LOGIT_SPREAD = 4.0
SEED = 0


# ----------------------------------------------------------------------------------------------- model


def build_model(backbone: str, weights: Path | None, calibration: Path | None):
    """The real model from ``weights``, or the seeded random-init model (calibrated when given)."""
    import torch

    if weights is not None:
        from UniversalSegLib.weights.checkpoint import load_model

        return load_model(weights, backbone=backbone)
    from UniversalSegLib.model import UniversalModel

    torch.manual_seed(SEED)
    model = UniversalModel(backbone).eval()
    if calibration is None:
        return model
    values = json.loads(calibration.read_text())
    return CalibratedModel(model, values["scale"], values["shift"])


def _calibrated_class():
    import torch

    class _Calibrated(torch.nn.Module):
        """``scale[c] · logits + shift[c]`` per output channel: structured masks from random weights."""

        def __init__(self, model: torch.nn.Module, scale: list[float], shift: list[float]) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
            self.register_buffer("shift", torch.tensor(shift, dtype=torch.float32))
            self.num_classes = model.num_classes

        @property
        def per_sample_norm(self) -> bool:
            return self.model.per_sample_norm

        @per_sample_norm.setter
        def per_sample_norm(self, value: bool) -> None:
            self.model.per_sample_norm = value

        # What the OpenVINO engine needs: the encoder parts, and the heads with the calibration.
        backbone = property(lambda self: self.model.backbone)
        GAP = property(lambda self: self.model.GAP)
        precls_conv = property(lambda self: self.model.precls_conv)
        backbone_name = property(lambda self: self.model.backbone_name)

        def image_features(self, x: torch.Tensor):
            return self.model.image_features(x)

        def class_logits(self, image: torch.Tensor, head_features: torch.Tensor, channels=None, **options):
            logits = self.model.class_logits(image, head_features, channels, **options)
            return self._calibrate(logits, channels)

        def _calibrate(self, logits: torch.Tensor, channels) -> torch.Tensor:
            index = torch.as_tensor(list(channels), device=logits.device)
            scale = self.scale.index_select(0, index)[None, :, None, None, None]
            shift = self.shift.index_select(0, index)[None, :, None, None, None]
            return logits * scale.to(logits.dtype) + shift.to(logits.dtype)

        def forward(self, x: torch.Tensor, channels=None) -> torch.Tensor:
            return self._calibrate(self.model(x, channels=channels), channels)

    return _Calibrated


def CalibratedModel(model, scale, shift):  # noqa: N802 - a class built lazily (torch imported in children)
    return _calibrated_class()(model, scale, shift)


def centre_window_calibration(
    model, volume, size: int, share: float = POSITIVE_SHARE
) -> dict[str, list[float]]:
    """Per-class scale/shift so that ``share`` of the centre window is > 0.5 and the logits span
    ±``LOGIT_SPREAD`` (fp32, on the CPU).

    ``volume``: the preprocessed CT ``[X, Y, Z]``; ``size``: the side of its centre window (zero-padded
    where the CT is smaller).
    """
    import torch

    window = torch.zeros(size, size, size)
    starts = [max(0, (n - size) // 2) for n in volume.shape]
    piece = volume[tuple(slice(s, s + size) for s in starts)]
    window[tuple(slice(0, n) for n in piece.shape)] = piece
    with torch.inference_mode():
        logits = model.cpu().float()(window[None, None])[0].flatten(1)
    high = torch.quantile(logits, 1 - share, dim=1)
    low = torch.quantile(logits, 0.05, dim=1)
    scale = LOGIT_SPREAD / (high - low).clamp(min=1e-6)
    return {"scale": scale.tolist(), "shift": (-high * scale).tolist()}


def calibrate(ct: Path, backbone: str, out: Path) -> None:
    """Per-class scale/shift so ~30% of the centre 64³ window is > 0.5 and the logits span ±4 (fp32, CPU)."""
    from UniversalSegLib.inference.preprocessing import preprocess
    from UniversalSegLib.io import read_image

    volume = preprocess(read_image(ct)).tensor[0]
    calibration = centre_window_calibration(build_model(backbone, None, None), volume, 64)
    out.write_text(json.dumps(calibration))


# ----------------------------------------------------------------------------------------------- child


def vmhwm_mib() -> float | None:
    """Peak resident memory of this process from Linux's VmHWM (resettable through clear_refs), in MiB;
    None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process (VmHWM, else ru_maxrss)."""
    peak = vmhwm_mib()
    if peak is not None:
        return peak
    import resource

    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 1024**2


def child_options(mode: str, device: str, roi_size: int):
    """Options of a speed mode, or of a custom setting ``[ov-]PRECISION:OVERLAP[:BATCH]`` (``ov-bf16:0.25``:
    the OpenVINO engine in bf16 with overlap 0.25; without ``ov-`` the PyTorch engine)."""
    from UniversalSegLib.inference.speed import options_for_speed

    if ":" not in mode:
        return options_for_speed(mode, device, roi_size=roi_size)
    engine = "openvino" if mode.startswith("ov-") else "torch"
    precision, overlap, *batch = mode.removeprefix("ov-").split(":")
    return options_for_speed(
        "faithful",
        device,
        precision=precision,
        overlap=float(overlap),
        sw_batch_size=int(batch[0]) if batch else 1,
        engine=engine,
        roi_size=roi_size,
    )


def prepare_engine(model, options) -> float:
    """Convert the model for OpenVINO (and quantize it for int8) and compile it at the mode's precision,
    unless already done; the seconds of that preparation (0 when the model was stored).

    This is the one-off cost of a model's first OpenVINO run. The parent runs it in a child of its own
    before the timed modes, so their times and peak memory are those of every later run (which loads the
    stored model and OpenVINO's cached compilation).
    """
    if options.engine != "openvino" or options.device.startswith("cuda"):
        return 0.0
    from UniversalSegLib.inference.engines import openvino_encoder

    roi = [options.roi_size] * 3
    already_stored = openvino_encoder.stored_encoder_path(model, roi, precision=options.precision) is not None
    start = time.perf_counter()
    openvino_encoder.compiled_encoder(model, roi, options.precision)  # fills both caches
    return 0.0 if already_stored else time.perf_counter() - start


def run_child(args: argparse.Namespace) -> None:
    """One mode: segment, save probabilities/masks, print one JSON line."""
    import SimpleITK as sitk  # noqa: N813

    from UniversalSegLib.inference.lean_import import import_monai_lean

    import_monai_lean()  # as `universalseg segment` does
    import torch

    from UniversalSegLib.inference import segment
    from UniversalSegLib.io import read_image

    model = build_model(args.backbone, args.weights, args.calibration)
    options = child_options(args.child, args.device, args.roi_size)
    if args.prepare:
        seconds = prepare_engine(model, options)
        print("SPEED_MODE_ROW " + json.dumps({"convert_s": seconds, "peak_rss_mib": peak_rss_mib()}))
        return
    cuda = options.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    image = read_image(args.ct)
    result = segment(image, model, list(args.classes), options, keep_probabilities=True)
    if cuda:
        torch.cuda.synchronize()
    total = time.perf_counter() - start
    out = args.work / args.child
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "probabilities.npz", **{str(k): result.probabilities[k] for k in result.classes})
    masks = {k: sitk.GetArrayViewFromImage(result.masks[k]) for k in result.classes}
    np.savez(out / "masks.npz", **{str(k): np.packbits(m > 0) for k, m in masks.items()})
    np.save(out / "mask_shape.npy", np.array(next(iter(masks.values())).shape))
    row = {
        "mode": args.child,
        "precision": options.precision,
        "engine": options.engine,
        "overlap": options.overlap,
        "sw_batch_size": options.sw_batch_size,
        "device": result.device,
        "windows": result.windows,
        "total_s": total,
        "read_s": total - result.timings["total"],
        "network_s": result.timings["network"],
        "timings": result.timings,
        "peak_rss_mib": peak_rss_mib(),
        "input_mib": image.GetNumberOfPixels() * image.GetSizeOfPixelComponent() / 1024**2,
        "threads": torch.get_num_threads(),
    }
    if cuda:
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 1024**2
        row["peak_gpu_reserved_mib"] = torch.cuda.max_memory_reserved() / 1024**2
        row["gpu"] = torch.cuda.get_device_name()
    print("SPEED_MODE_ROW " + json.dumps(row), flush=True)


# ---------------------------------------------------------------------------------------------- parent


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def compare(work: Path, mode: str, reference: str = "faithful") -> dict:
    """Fidelity of ``mode`` against ``reference``: max |Δp|, per-class Dice, share of differing voxels."""
    with (
        np.load(work / mode / "probabilities.npz") as probs,
        np.load(work / reference / "probabilities.npz") as ref_probs,
        np.load(work / mode / "masks.npz") as masks,
        np.load(work / reference / "masks.npz") as ref_masks,
    ):
        max_dp = max(
            float(np.abs(probs[k].astype(np.float32) - ref_probs[k].astype(np.float32)).max()) for k in probs
        )
        voxels_per_class = int(np.prod(np.load(work / reference / "mask_shape.npy")))
        dices, differing, positive = {}, 0, {}
        for key in masks:
            mask = np.unpackbits(masks[key], count=voxels_per_class).astype(bool)
            ref_mask = np.unpackbits(ref_masks[key], count=voxels_per_class).astype(bool)
            dices[int(key)] = dice(mask, ref_mask)
            differing += int(np.count_nonzero(mask != ref_mask))
            positive[int(key)] = float(ref_mask.mean())
        voxels = voxels_per_class * len(dices)
    return {
        "max_abs_dprob": max_dp,
        "dice": dices,
        "min_dice": min(dices.values()),
        "mean_dice": float(np.mean(list(dices.values()))),
        "differing_fraction": differing / voxels,
        "reference_positive_share": positive,
    }


def resampled_ct(ct: Path, spacing_mm: float, work: Path) -> Path:
    """``ct`` resampled (linear) to ``spacing_mm`` isotropic, written to ``work``."""
    import SimpleITK as sitk  # noqa: N813

    image = sitk.ReadImage(str(ct))
    size = [
        max(1, round(n * s / spacing_mm)) for n, s in zip(image.GetSize(), image.GetSpacing(), strict=True)
    ]
    resampled = sitk.Resample(
        image,
        size,
        sitk.Transform(),
        sitk.sitkLinear,
        image.GetOrigin(),
        (spacing_mm,) * 3,
        image.GetDirection(),
        -1024,
        sitk.sitkInt16,
    )
    path = work / f"ct_{spacing_mm:g}mm.nii.gz"
    sitk.WriteImage(resampled, str(path), useCompression=False)
    return path


def run_mode(
    args: argparse.Namespace, mode: str, ct: Path, calibration: Path | None, prepare: bool = False
) -> dict:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--ct",
        str(ct),
        "--backbone",
        args.backbone,
        "--device",
        args.device,
        "--work",
        str(args.work),
        "--roi-size",
        str(args.roi_size),
        "--classes",
        *map(str, args.classes),
    ]
    if args.weights:
        command += ["--weights", str(args.weights)]
    if calibration:
        command += ["--calibration", str(calibration)]
    if prepare:
        command.append("--prepare")
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO_ROOT)
    rows = [line for line in result.stdout.splitlines() if line.startswith("SPEED_MODE_ROW ")]
    if result.returncode != 0 or not rows:
        raise RuntimeError(f"mode {mode} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return json.loads(rows[-1].split(" ", 1)[1])


def format_table(rows: list[dict], cuda: bool) -> str:
    header = (
        f"{'mode':<14} {'settings':<22} {'win':>4} {'e2e s':>8} {'s/win':>6} {'speed-up':>8} {'outside':>8}"
        f" {'RSS MiB':>8} {'RSS/in':>7}"
        + (f" {'GPU MiB':>8}" if cuda else "")
        + f" {'max|Δp|':>8} {'minDice':>8} {'meanDice':>8} {'differ':>8}"
    )
    lines = [header, "-" * len(header)]
    base = next(row["total_s"] for row in rows if row["mode"] == "faithful")
    for row in rows:
        engine, precision = row.get("engine", "torch"), row["precision"]
        settings = f"{engine} {precision} {row['overlap']:g} b{row['sw_batch_size']}"
        outside = 1 - row["network_s"] / row["total_s"]
        lines.append(
            f"{row['mode']:<14} {settings:<22} {row['windows']:>4} {row['total_s']:>8.1f} "
            f"{row['network_s'] / max(row['windows'], 1):>6.2f} {base / row['total_s']:>7.2f}x"
            f" {outside:>8.1%}"
            f" {row['peak_rss_mib']:>8.0f} {row['peak_rss_mib'] / row['input_mib']:>6.0f}x"
            + (f" {row.get('peak_gpu_mib', 0):>8.0f}" if cuda else "")
            + f" {row['max_abs_dprob']:>8.4f} {row['min_dice']:>8.4f} {row['mean_dice']:>8.4f}"
            f" {row['differing_fraction']:>8.4%}"
        )
    for row in rows:
        if row.get("convert_s", 0) > 0:
            lines.append(
                f"  {row['mode']}: first run of a model +{row['convert_s']:.1f} s (OpenVINO conversion, "
                f"peak RSS {row['convert_peak_rss_mib']:.0f} MiB, stored for later runs; not in e2e)"
            )
    for row in rows:
        if row["mode"] != "faithful":
            per_class = ", ".join(f"{k}:{v:.4f}" for k, v in sorted(row["dice"].items()))
            lines.append(f"  Dice vs faithful, {row['mode']}: {per_class}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ct", type=Path, default=DEFAULT_CT, help="CT file (default: example_ct_sm)")
    parser.add_argument("--backbone", choices=("swinunetr", "unet"), default="swinunetr")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["faithful", "balanced", "fast"],
        help="speed modes, or custom settings [ov-]PRECISION:OVERLAP[:BATCH] such as bf16:0.25 (PyTorch) "
        "or ov-bf16:0.25 (OpenVINO)",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--resample-mm", type=float, help="resample the CT to this isotropic spacing first")
    parser.add_argument("--classes", nargs="+", type=int, default=list(DEFAULT_CLASSES))
    parser.add_argument("--weights", type=Path, help="a real checkpoint (default: calibrated random init)")
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--roi-size", type=int, default=96, help="window side (96; smaller for smoke tests)")
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--calibration", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
        return
    if "faithful" not in args.modes:
        args.modes.insert(0, "faithful")
    args.modes = ["faithful"] + [m for m in args.modes if m != "faithful"]
    with tempfile.TemporaryDirectory(prefix="speed_modes_") as folder:
        args.work = Path(folder)
        os.environ["UNIVERSALSEG_HOME"] = str(args.work / "home")  # a cold OpenVINO cache, own rates
        ct = resampled_ct(args.ct, args.resample_mm, args.work) if args.resample_mm else args.ct
        calibration = None
        if args.weights is None:
            calibration = args.work / "calibration.json"
            calibrate(ct, args.backbone, calibration)
        rows = []
        for mode in args.modes:
            may_use_openvino = mode in ("balanced", "fast") or mode.startswith("ov-")
            if may_use_openvino and not args.device.startswith("cuda"):
                prepared = run_mode(args, mode, ct, calibration, prepare=True)
            else:
                prepared = {"convert_s": 0.0}
            row = run_mode(args, mode, ct, calibration)
            if prepared["convert_s"] > 0:
                row.update(convert_s=prepared["convert_s"], convert_peak_rss_mib=prepared["peak_rss_mib"])
            print(f"[{mode}] {row['total_s']:.1f} s, {row['windows']} windows", file=sys.stderr, flush=True)
            rows.append(row)
        for row in rows:
            row.update(compare(args.work, row["mode"]))
    cuda = args.device.startswith("cuda")
    weights = args.weights.name if args.weights else f"random init (seed {SEED}), calibrated logits"
    print(
        f"backbone {args.backbone}, CT {args.ct.name}"
        + (f" resampled to {args.resample_mm:g} mm" if args.resample_mm else "")
        + f", classes {args.classes}, weights: {weights}, device {rows[0]['device']}"
        + (f" ({rows[0].get('gpu')})" if cuda else f", {os.cpu_count()} CPUs, {rows[0]['threads']} threads")
    )
    print(format_table(rows, cuda))
    if args.json_out:
        args.json_out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
