"""GPU benchmark (issue #13): our speed modes beside the official loop's settings, end to end from a CT file.

One run, one GPU, nothing to download: the script synthesises an abdomen-like CT (``synthetic_ct.py``)
whose preprocessed extent gives 48 sliding windows (and 80 with ``--windows 48 80``, the default), writes
random-init checkpoints in the released layout (Swin UNETR and U-Net), and times, per backbone and CT:

* ``official``: the official test loop's settings re-implemented here: the CT read with SimpleITK, our
  preprocessing (the official chain), MONAI ``sliding_window_inference`` over the full model forward (all
  32 output channels), fp32 with TF32 as the official code's PyTorch 1.11 defaults had it (convolutions and
  matrix products), one window per pass, overlap 0.5, the official Gaussian weight map, ``sigmoid > 0.5``
  on the whole tensor, then our post-processing, resampling and ``.seg.nrrd`` writing (so that the end to
  end figures compare);
* ``faithful`` (32 classes), ``faithful_liver`` (liver + liver tumor), ``balanced``, ``fast``: the library
  end to end, ``read_image`` → ``segment`` → ``write_segmentation_nrrd``, with the speed modes' options
  (``options_for_speed``);
* ``balanced_compiled``: ``balanced`` with ``InferenceOptions.compile=True`` in a second process, after a
  first process compiled it (so the row shows the cross-process cache; the first process's seconds are
  reported too). "n/a" when the library has no ``compile`` option or the engine does not compile.

Per row: seconds per stage (read, preprocess, inference and its network part, post-processing,
resampling, write, total), windows, windows/s (network), peak GPU memory (``max_memory_allocated``; peak
RSS on the CPU), speed-up against ``official`` (end to end and inference stage) and the per-class Dice of
the masks against ``faithful`` (same backbone and CT). Every row is timed after an untimed warm-up (one
full pass per backbone, and on CUDA one forward pass per row's precision and windows per pass).

Random-init logits give all-on or all-off masks, so each backbone's logits get a per-class affine
calibration (measured once, fp32 on the CPU, on the CT's centre window: 2% of it above 0.5 per class,
``--positive-share``), the same in every row and process: the masks have structure, and Dice measures what
the modes change. Random masks overlap far more than real organs, so the written ``.seg.nrrd`` has more
labelmap layers than a real result (the table shows how many) and its ``write`` seconds are pessimistic.

On a CPU (``--device cpu``, e.g. ``--tiny``) the rows use the PyTorch presets of the speed modes (the
OpenVINO engine has its own benchmark, ``speed_modes.py``) and ``compile`` is not applied (CUDA only).

Usage::

    python benchmarks/gpu_speed.py [--device cuda] [--backbones swinunetr unet] [--windows 48 80]
        [--budget-s 330] [--out-dir DIR] [--json-out FILE]
    python benchmarks/gpu_speed.py --device cpu --tiny   # the format on a CPU in well under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # UniversalSegLib without an install (device machines)
sys.path.insert(0, str(Path(__file__).resolve().parent))

from end_to_end import STAGES, file_to_segmentation  # noqa: E402 (after the path set-up)
from speed_modes import centre_window_calibration, vmhwm_mib  # noqa: E402
from synthetic_ct import write_synthetic_ct  # noqa: E402

ALL_CLASSES = tuple(range(1, 33))
LIVER_CLASSES = (6, 27)  # liver, liver tumor
TINY_CLASSES = (1, 6, 27)  # spleen, liver, liver tumor
#: U-Net windows of 16³: 3 windows along x at overlap 0.5, 2 at overlap 0 (``fast`` on CPUs: masks differ).
TINY_ROI = 16
ROWS = ("official", "faithful", "faithful_liver", "balanced", "fast", "balanced_compiled")
#: The rows of every window count after the first (the first has all of ROWS).
LATER_ROWS = ("official", "faithful", "balanced", "balanced_compiled")
COMPILED = "balanced_compiled"
#: Share of the centre window above 0.5 per class after calibration: organ-sized masks. (With 30%, as
#: speed_modes.py uses, 32 overlapping masks make a .seg.nrrd of about 26 layers whose writing dominates.)
POSITIVE_SHARE = 0.02
#: --tiny: 30%, as speed_modes.py: 2% of a 16³ window is a few voxels, whose Dice says little.
TINY_POSITIVE_SHARE = 0.3
SEED = 0
ROW_MARK = "GPU_SPEED_ROW "


# ----------------------------------------------------------------------------------------------- setup


@dataclasses.dataclass
class Setup:
    """The run's settings (from the command line, or a child's spec)."""

    device: str
    roi_size: int
    all_classes: tuple[int, ...]
    liver_classes: tuple[int, ...]
    out_dir: Path
    share: float = POSITIVE_SHARE
    start: float = dataclasses.field(default_factory=time.perf_counter)
    budget_s: float = math.inf

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")

    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.start)


def synchronize(setup: Setup) -> None:
    import torch

    if setup.cuda:
        torch.cuda.synchronize()


def compile_option_exists() -> bool:
    from UniversalSegLib.inference.options import InferenceOptions

    return "compile" in {field.name for field in dataclasses.fields(InferenceOptions)}


def row_options(setup: Setup, row: str):
    """The ``InferenceOptions`` of a library row; on CPUs the PyTorch presets (this benchmarks the PyTorch
    path: the OpenVINO engine has its own benchmark, ``speed_modes.py``)."""
    from UniversalSegLib.inference.speed import options_for_speed, speed_preset

    mode = {"faithful_liver": "faithful", COMPILED: "balanced"}.get(row, row)
    fields: dict[str, object] = {"roi_size": setup.roi_size}
    if not setup.cuda:
        preset = speed_preset(mode, "cpu", openvino=False)
        fields.update(
            engine="torch",
            overlap=preset.overlap,
            precision=preset.precision,
            sw_batch_size=preset.sw_batch_size,
        )
    if compile_option_exists():
        fields["compile"] = row == COMPILED
    return options_for_speed(mode, setup.device, **fields)


def row_classes(setup: Setup, row: str) -> tuple[int, ...]:
    return setup.liver_classes if row == "faithful_liver" else setup.all_classes


# ----------------------------------------------------------------------------------------------- model


def _calibrated_class():
    from UniversalSegLib.model import UniversalModel
    from UniversalSegLib.model.dynamic_heads import apply_dynamic_heads

    class CalibratedModel(UniversalModel):
        """``logit_scale[c] · logits + logit_shift[c]`` per class, in every path that computes logits
        (``forward`` and ``class_logits``, so the engines' split predictors see it too)."""

        def class_logits(self, image, head_features, channels=None, heads=apply_dynamic_heads):
            logits = super().class_logits(image, head_features, channels, heads)
            index = self._channel_index(channels, logits.device)
            scale = self.logit_scale.index_select(0, index)[None, :, None, None, None]
            shift = self.logit_shift.index_select(0, index)[None, :, None, None, None]
            return logits * scale.to(logits.dtype) + shift.to(logits.dtype)

    return CalibratedModel


def load_calibrated(checkpoint: Path, backbone: str, calibration: dict[str, list[float]]):
    """The checkpoint's model (our loader, as the CLI uses it) with the calibration built in."""
    import torch

    from UniversalSegLib.weights.checkpoint import load_model

    model = load_model(checkpoint, backbone=backbone)
    model.__class__ = _calibrated_class()  # same module, one extra method: the loaded state is kept
    model.register_buffer("logit_scale", torch.tensor(calibration["scale"], dtype=torch.float32))
    model.register_buffer("logit_shift", torch.tensor(calibration["shift"], dtype=torch.float32))
    return model.eval()


# ---------------------------------------------------------------------------------------------- memory


def reset_peak(setup: Setup) -> None:
    """Start a new peak: GPU allocations on CUDA, else this process's peak RSS (Linux)."""
    import torch

    if setup.cuda:
        torch.cuda.reset_peak_memory_stats()
        return
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM


def peak_mib(setup: Setup) -> float | None:
    """Peak GPU memory allocated (CUDA) or peak RSS (VmHWM) since :func:`reset_peak`, in MiB."""
    import torch

    if setup.cuda:
        return torch.cuda.max_memory_allocated() / 1024**2
    return vmhwm_mib()  # None where it cannot be read (and reset_peak could not reset it either)


# ------------------------------------------------------------------------------------------------ rows


def _resample_like_segment(masks, affine, image):
    """Masks onto the input grid exactly as ``segment`` does (8 per nearest-neighbour resampling)."""
    from UniversalSegLib.inference.pipeline import MASKS_PER_RESAMPLE, _group_to_input_grid

    indices = sorted(masks)
    output = {}
    for start in range(0, len(indices), MASKS_PER_RESAMPLE):
        group = indices[start : start + MASKS_PER_RESAMPLE]
        output.update(_group_to_input_grid({i: masks[i] for i in group}, affine, image))
    return output


class _OfficialForward:
    """The full model forward (all output channels), its network time measured as ``segment`` measures it
    (:class:`~UniversalSegLib.inference.sliding_window.NetworkClock`: no per-window synchronisation), as
    the official loop ran it."""

    def __init__(self, model, setup: Setup) -> None:
        import torch

        from UniversalSegLib.inference.sliding_window import NetworkClock

        self.model = model
        self.clock = NetworkClock(torch.device(setup.device))
        self.windows = 0

    def __call__(self, window):
        self.windows += window.shape[0]
        self.clock.start()
        logits = self.model(window)
        self.clock.stop()
        return logits

    def seconds(self) -> float:
        return self.clock.total()


def run_official(setup: Setup, model, ct: Path, classes: Sequence[int], output: Path) -> dict:
    """The official loop's settings (module docstring), timed per stage; returns seconds, windows, masks."""
    import SimpleITK as sitk  # noqa: N813
    import torch
    from monai.inferers import sliding_window_inference

    from UniversalSegLib.inference.postprocessing import postprocess_masks, required_classes
    from UniversalSegLib.inference.preprocessing import preprocess
    from UniversalSegLib.inference.tf32 import tf32_mode
    from UniversalSegLib.inference.weight_map import window_weight_map
    from UniversalSegLib.io import write_segmentation_nrrd

    device = torch.device(setup.device)
    roi = [setup.roi_size] * 3
    seconds: dict[str, float] = {}
    synchronize(setup)
    start = mark = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[stage], mark = now - mark, now

    image = sitk.ReadImage(str(ct))
    lap("read")
    with tf32_mode(True):  # the official code's torch 1.11 defaults: TF32 convolutions and matrix products
        prepared = preprocess(image)
        lap("preprocess")
        forward = _OfficialForward(model, setup)
        weights = window_weight_map("gaussian", roi).to(device)[None, None]
        with torch.no_grad():
            logits = sliding_window_inference(
                prepared.tensor[None].to(device),
                roi,
                1,
                forward,
                overlap=0.5,
                mode="gaussian",
                roi_weight_map=weights,
                padding_mode="constant",
                cval=0.0,
            )
            hard = (torch.sigmoid(logits[0]) > 0.5).cpu().numpy()
        del logits
        synchronize(setup)
        lap("inference")
    seconds["network"] = forward.seconds()
    computed = sorted(set(classes) | required_classes(classes))
    masks = postprocess_masks({index: hard[index - 1] for index in computed})
    del hard
    lap("postprocess")
    on_input = _resample_like_segment({index: masks[index] for index in classes}, prepared.affine, image)
    lap("resample")
    write_segmentation_nrrd(on_input, output, overwrite=True)
    lap("write")
    seconds["total"] = time.perf_counter() - start
    return {"seconds": seconds, "windows": forward.windows, "masks": on_input, "warnings": []}


def run_library(setup: Setup, model, ct: Path, classes: Sequence[int], options, output: Path) -> dict:
    """``read_image`` → ``segment`` → ``write_segmentation_nrrd``, timed per stage."""
    seconds, result = file_to_segmentation(ct, model, classes, options, output, lambda: synchronize(setup))
    extra = {k: v for k, v in result.timings.items() if k not in STAGES}  # e.g. a compile stage
    return {
        "seconds": seconds,
        "windows": result.windows,
        "masks": result.masks,
        "warnings": list(result.warnings),
        "extra_timings": extra,
    }


def warm_up(setup: Setup, model, options, channels: Sequence[int] | None, windows: int) -> None:
    """One forward pass per batch shape the row will run (first kernels, lazy CUDA modules), untimed; CUDA
    only (on CPUs the backbone's full warm-up pass suffices, and a forward pass costs seconds)."""
    import torch

    if not setup.cuda:
        return

    from UniversalSegLib.inference.device import autocast_context, autocast_precision, precision_for_device
    from UniversalSegLib.inference.tf32 import tf32_mode

    device = torch.device(setup.device)
    precision = autocast_precision(precision_for_device(options.precision, device), device)
    batch = options.sw_batch_size
    shapes = sorted({batch, windows % batch} - {0})
    model.to(device)
    with torch.inference_mode(), tf32_mode(options.tf32), autocast_context(device, precision):
        for size in shapes:
            model(torch.rand(size, 1, *[setup.roi_size] * 3, device=device), channels=channels)
    synchronize(setup)


def settings_text(options) -> str:
    text = f"{options.precision}, overlap {options.overlap:g}, {options.sw_batch_size}/pass"
    if options.engine != "torch":
        text += f", {options.engine}"
    if getattr(options, "compile", False):
        text += ", compile"
    return text


OFFICIAL_SETTINGS = "fp32 (TF32), overlap 0.5, 1/pass, 32 channels"


# ----------------------------------------------------------------------------------------------- masks


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)


def pack_masks(masks) -> dict[int, np.ndarray]:
    """class → packed bits of a mask (SimpleITK image or array), for Dice without keeping the volumes."""
    import SimpleITK as sitk  # noqa: N813

    packed = {}
    for index, mask in masks.items():
        array = sitk.GetArrayViewFromImage(mask) if isinstance(mask, sitk.Image) else np.asarray(mask)
        packed[int(index)] = np.packbits(array.reshape(-1))
    return packed


def _ones(packed: np.ndarray) -> int:
    return (
        int(np.bitwise_count(packed).sum()) if hasattr(np, "bitwise_count") else int(_POPCOUNT[packed].sum())
    )


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two packed masks (1.0 when both are empty)."""
    total = _ones(a) + _ones(b)
    return 1.0 if total == 0 else 2.0 * _ones(a & b) / total


def dice_against(packed: dict[int, np.ndarray], reference: dict[int, np.ndarray]) -> dict[int, float]:
    return {index: dice(mask, reference[index]) for index, mask in packed.items() if index in reference}


def positive_share(packed: dict[int, np.ndarray], voxels: int) -> dict[int, float]:
    return {index: _ones(mask) / voxels for index, mask in packed.items()}


# -------------------------------------------------------------------------------- compiled row (children)


def run_child(spec_path: Path) -> None:
    """A child process of the compiled row: ``phase`` ``compile`` (first run only) or ``reuse`` (first
    run, then a timed run per CT, masks saved for the parent's Dice). Prints one JSON line per result."""
    from UniversalSegLib.inference.lean_import import import_monai_lean

    import_monai_lean()  # as `universalseg segment` does
    spec = json.loads(spec_path.read_text())
    setup = Setup(spec["device"], spec["roi_size"], tuple(spec["classes"]), (), Path(spec["out_dir"]))
    model = load_calibrated(Path(spec["checkpoint"]), spec["backbone"], spec["calibration"])
    model.to(setup.device)
    options = row_options(setup, COMPILED)
    cts = spec["cts"]
    first = run_library(
        setup, model, Path(cts[0]["path"]), setup.all_classes, options, Path(cts[0]["output"])
    )
    print(
        ROW_MARK
        + json.dumps(
            {
                "first_run": first["seconds"],
                "compiled_graphs": _compiled_graphs(),
                "warnings": first["warnings"],
                "extra_timings": first["extra_timings"],
            }
        ),
        flush=True,
    )
    if spec["phase"] == "compile":
        return
    for ct in cts:
        reset_peak(setup)
        measured = run_library(setup, model, Path(ct["path"]), setup.all_classes, options, Path(ct["output"]))
        peak = peak_mib(setup)
        np.savez(ct["masks"], **{str(k): v for k, v in pack_masks(measured.pop("masks")).items()})
        print(
            ROW_MARK + json.dumps({"windows_target": ct["windows"], "peak_mib": peak, **measured}), flush=True
        )


def _compiled_graphs() -> int | None:
    """Graphs ``torch.compile`` compiled in this process (None when PyTorch does not say)."""
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"].get("unique_graphs", 0))
    except Exception:  # noqa: BLE001 - a private counter: any change means "unknown"
        return None


#: Process groups of the running children: they have their own sessions, so a ``timeout`` that stops this
#: process would not reach them; :func:`_stop_children` does.
_ACTIVE_CHILDREN: set[int] = set()


def _stop_children(signum: int, frame: object) -> None:
    """SIGTERM/SIGINT handler of the parent: kill the children's process groups, then exit."""
    for pid in list(_ACTIVE_CHILDREN):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def _run_child_process(spec: dict, path: Path, timeout_s: float) -> tuple[list[dict], str]:
    """Run one child (own process group, killed whole on timeout); its JSON lines and an error text.

    ``TORCHINDUCTOR_CACHE_DIR`` is left unset, so the engine keeps its compiled artefacts in
    ``$UNIVERSALSEG_HOME/torch_compile`` (this run's own folder: a cold start for the first process).
    """
    path.write_text(json.dumps(spec))
    env = {key: value for key, value in os.environ.items() if key != "TORCHINDUCTOR_CACHE_DIR"}
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )
    _ACTIVE_CHILDREN.add(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=max(timeout_s, 1))
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return [], f"did not finish within the budget ({timeout_s:.0f} s left)"
    finally:
        _ACTIVE_CHILDREN.discard(process.pid)
    rows = [json.loads(line[len(ROW_MARK) :]) for line in stdout.splitlines() if line.startswith(ROW_MARK)]
    if process.returncode != 0:
        return rows, f"exit {process.returncode}: {stderr.strip()[-1500:]}"
    return rows, ""


def compiled_rows(setup: Setup, backbone: str, checkpoint: Path, calibration: dict, cts: list[dict]) -> dict:
    """The compiled row's two processes; ``{"rows": [...], "notes": [...], "skipped": reason or None}``."""
    if not compile_option_exists():
        return {"rows": [], "notes": [], "skipped": "n/a: InferenceOptions has no compile option yet"}
    spec = {
        "device": setup.device,
        "roi_size": setup.roi_size,
        "classes": list(setup.all_classes),
        "out_dir": str(setup.out_dir),
        "backbone": backbone,
        "checkpoint": str(checkpoint),
        "calibration": calibration,
        "cts": cts,
    }
    folder = setup.out_dir / "children"
    folder.mkdir(exist_ok=True)
    first, error = _run_child_process(
        {**spec, "phase": "compile"}, folder / f"{backbone}_1.json", setup.remaining_s()
    )
    if error or not first:
        return {"rows": [], "notes": [], "skipped": f"first process failed: {error or 'no result'}"}
    from UniversalSegLib.cache_paths import compile_folder

    stored = compile_folder()  # $UNIVERSALSEG_HOME, set by run()
    honoured = bool(first[0]["compiled_graphs"]) or (stored.is_dir() and any(stored.iterdir()))
    if setup.cuda and not honoured:
        return {"rows": [], "notes": [], "skipped": "n/a: the engine did not compile (compile=True ignored)"}
    first_s = first[0]["first_run"]["total"]
    if setup.cuda:
        note = f"first process: first run {first_s:.1f} s end to end (compiling into a cold cache)"
    else:
        note = (
            f"first process: first run {first_s:.1f} s; compile is CUDA-only, so on the CPU both processes "
            "run uncompiled (this only exercises the two-process path)"
        )
    if first[0]["extra_timings"]:
        note += ", " + ", ".join(f"{k} {v:.1f} s" for k, v in first[0]["extra_timings"].items())
    if setup.remaining_s() <= 0:
        return {"rows": [], "notes": [note], "skipped": "over the time budget before the second process"}
    second, error = _run_child_process(
        {**spec, "phase": "reuse"}, folder / f"{backbone}_2.json", setup.remaining_s()
    )
    notes = [note]
    if second:
        loaded = " (loading the cached compilation)" if setup.cuda else ""
        notes.append(f"second process: first run {second[0]['first_run']['total']:.1f} s{loaded}")
    for warning in {w for result in first[:1] + second[:1] for w in result.get("warnings", [])}:
        notes.append(f"compiled row warning: {warning}")
    skipped = f"second process failed: {error}" if error else None
    return {"rows": second[1:], "notes": notes, "skipped": skipped, "compiled": honoured and setup.cuda}


# --------------------------------------------------------------------------------------------- table


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def format_table(rows: list[dict], cuda: bool) -> str:
    """The rows as a markdown table (seconds per stage; "write (layers)": the .seg.nrrd's labelmap layers)."""
    memory = "peak GPU MiB" if cuda else "peak RSS MiB"
    header = (
        "| backbone | CT windows | row | classes | settings | windows run | read | preprocess | inference | "
        f"(network) | postprocess | resample | write (layers) | **total s** | win/s | {memory} | "
        "× official (total) | × official (inference) | Dice min / mean vs faithful |"
    )
    columns = header.count("|") - 1
    lines = [header, "|" + "---|" * columns]
    for row in rows:
        lead = f"| {row['backbone']} | {row['windows_target']} | {row['row']} |"
        if "skipped" in row:
            lines.append(f"{lead} | {row['skipped']} |" + " |" * (columns - 5))
            continue
        s = row["seconds"]
        speedup = row.get("speedup", {})
        dice_text = "-" if row.get("min_dice") is None else f"{row['min_dice']:.4f} / {row['mean_dice']:.4f}"
        lines.append(
            f"{lead} {row['classes']} | {row['settings']} | {row['windows']} | "
            + " | ".join(_f(s[stage]) for stage in STAGES[:6])
            + f" | {_f(s['write'])} ({row['layers']}) | **{_f(s['total'])}** | "
            f"{_f(row['windows_per_s'], 1)} | {_f(row['peak_mib'], 0)} | {_f(speedup.get('total'))} | "
            f"{_f(speedup.get('inference'))} | {dice_text} |"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- parent


def finish_row(row: dict, measured: dict, peak: float | None, output: Path) -> dict:
    """``row`` with a measured run's seconds, windows, rate, peak memory, warnings and file layers."""
    seconds = measured["seconds"]
    row.update(
        seconds=seconds,
        windows=int(measured["windows"]),
        windows_per_s=measured["windows"] / seconds["network"] if seconds["network"] > 0 else None,
        peak_mib=peak,
        warnings=measured.get("warnings", []),
        layers=segmentation_layers(output),
    )
    return row


def segmentation_layers(path: Path) -> int:
    """Labelmap layers of a written ``.seg.nrrd`` (overlapping segments go to further layers)."""
    import nrrd

    header = nrrd.read_header(str(path))
    return int(header["sizes"][0]) if int(header["dimension"]) == 4 else 1


def add_comparisons(rows: list[dict], references: dict, packed: dict) -> None:
    """Speed-up against ``official`` and Dice against ``faithful`` of the same backbone and CT."""
    for row in rows:
        if "seconds" not in row:
            continue
        key = (row["backbone"], row["windows_target"])
        official = next(
            (
                r
                for r in rows
                if (r["backbone"], r["windows_target"]) == key and r["row"] == "official" and "seconds" in r
            ),
            None,
        )
        if official is not None:
            row["speedup"] = {
                stage: official["seconds"][stage] / row["seconds"][stage]
                for stage in ("total", "inference")
                if row["seconds"][stage] > 0
            }
        masks = packed.get((*key, row["row"]))
        if key in references and masks is not None:
            scores = dice_against(masks, references[key])
            row["dice"] = {str(k): v for k, v in scores.items()}
            row["min_dice"] = min(scores.values())
            row["mean_dice"] = float(np.mean(list(scores.values())))


def _by(values: Sequence[float], form: str = "{}") -> str:
    return "×".join(form.format(value) for value in values)


def prepare_cts(setup: Setup, windows: Sequence[int], tiny: bool) -> tuple[list[dict], list[str]]:
    """Write (or reuse) one CT per window count and check its windows on the preprocessed grid."""
    from UniversalSegLib.inference.preprocessing import preprocess
    from UniversalSegLib.inference.sliding_window import count_windows
    from UniversalSegLib.io import read_image

    spacing = (1.5, 1.5, 2.5) if tiny else (0.8, 0.8, 2.5)
    cts, lines = [], []
    for count in windows:
        path = setup.out_dir / f"synthetic_ct_{count}w_roi{setup.roi_size}.nii.gz"
        ct = write_synthetic_ct(path, count, setup.roi_size, spacing_mm=spacing)
        prepared = preprocess(read_image(path))
        got = count_windows(prepared.shape, [setup.roi_size] * 3, 0.5)
        if got != count:
            raise SystemExit(f"the synthetic CT gives {got} windows, not {count} (shape {prepared.shape})")
        lines.append(
            f"CT {path.name}: {_by(ct.size)} voxels at {_by(ct.spacing_mm, '{:g}')} mm, body "
            f"{_by(ct.body_mm, '{:.0f}')} mm; preprocessed {_by(prepared.shape)} → {got} windows "
            f"({_by(ct.grid)}, roi {setup.roi_size}, overlap 0.5)"
        )
        cts.append({"windows": count, "path": str(path), "volume": prepared.tensor[0]})
    return cts, lines


def measure_row(setup: Setup, model, ct: dict, name: str, output: Path) -> tuple[dict, dict]:
    """One parent row after its warm-up: the row's fields, and the measured masks (packed)."""
    classes = row_classes(setup, name)
    options = None if name == "official" else row_options(setup, name)
    if options is None:
        warm_up(setup, model, row_options(setup, "faithful"), None, ct["windows"])
    else:
        warm_up(setup, model, options, [c - 1 for c in classes], ct["windows"])
    reset_peak(setup)
    if options is None:
        measured = run_official(setup, model, Path(ct["path"]), classes, output)
    else:
        measured = run_library(setup, model, Path(ct["path"]), classes, options, output)
    row = finish_row({}, measured, peak_mib(setup), output)
    row.update(
        classes=len(classes), settings=OFFICIAL_SETTINGS if options is None else settings_text(options)
    )
    return row, pack_masks(measured["masks"])


def run_backbone(
    setup: Setup, backbone: str, cts: list[dict], rows_wanted: Sequence[str], results: dict
) -> dict:
    """All parent rows of one backbone; returns what the compiled row's processes need."""
    import torch

    from UniversalSegLib.testing import write_random_checkpoint
    from UniversalSegLib.weights.checkpoint import load_model

    checkpoint = setup.out_dir / f"{backbone}_random_released_layout.pth"
    if not checkpoint.exists():
        write_random_checkpoint(checkpoint, backbone, layout="official", seed=SEED)
    started = time.perf_counter()
    window = min(64, setup.roi_size)
    calibration = centre_window_calibration(
        load_model(checkpoint, backbone=backbone), cts[0]["volume"], window, setup.share
    )
    model = load_calibrated(checkpoint, backbone, calibration).to(setup.device)
    synchronize(setup)
    results["notes"].append(
        f"{backbone}: checkpoint loaded, calibrated and moved to {setup.device} in "
        f"{time.perf_counter() - started:.1f} s (not in the rows)"
    )
    outputs = setup.out_dir / "outputs"
    outputs.mkdir(exist_ok=True)
    for position, ct in enumerate(cts):
        names = [r for r in (ROWS if position == 0 else LATER_ROWS) if r in rows_wanted and r != COMPILED]
        for name in names:
            row = {"backbone": backbone, "windows_target": ct["windows"], "row": name}
            results["rows"].append(row)
            if setup.remaining_s() <= 0:
                row["skipped"] = "over the time budget"
                continue
            output = outputs / f"{backbone}_{ct['windows']}w_{name}.seg.nrrd"
            if position == 0 and name == names[0]:  # first CUDA use, first library calls: untimed
                run_official(setup, model, Path(ct["path"]), row_classes(setup, name), output)
            fields, packed = measure_row(setup, model, ct, name, output)
            row.update(fields)
            results["packed"][(backbone, ct["windows"], name)] = packed
            if name == "faithful":
                results["references"][(backbone, ct["windows"])] = packed
                shares = positive_share(packed, math.prod(sitk_size(Path(ct["path"]))))
                results["positive_share"][f"{backbone}_{ct['windows']}"] = {
                    str(k): v for k, v in shares.items()
                }
            total = row["seconds"]["total"]
            print(f"[{backbone} {ct['windows']}w {name}] {total:.2f} s", file=sys.stderr, flush=True)
    del model
    if setup.cuda:
        torch.cuda.empty_cache()
    return {"checkpoint": checkpoint, "calibration": calibration}


def sitk_size(path: Path) -> tuple[int, ...]:
    import SimpleITK as sitk  # noqa: N813

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return reader.GetSize()


def add_compiled_rows(setup: Setup, backbone: str, prepared: dict, cts: list[dict], results: dict) -> None:
    """The compiled row of every CT, from the two child processes."""
    wanted = [ct for i, ct in enumerate(cts) if COMPILED in (ROWS if i == 0 else LATER_ROWS)]
    placeholders = {}
    for ct in wanted:
        row = {"backbone": backbone, "windows_target": ct["windows"], "row": COMPILED}
        results["rows"].append(row)
        placeholders[ct["windows"]] = row
    if setup.remaining_s() <= 0:
        for row in placeholders.values():
            row["skipped"] = "over the time budget"
        return
    children = setup.out_dir / "children"
    specs = [
        {
            "windows": ct["windows"],
            "path": ct["path"],
            "output": str(setup.out_dir / "outputs" / f"{backbone}_{ct['windows']}w_{COMPILED}.seg.nrrd"),
            "masks": str(children / f"{backbone}_{ct['windows']}w_masks.npz"),
        }
        for ct in wanted
    ]
    outcome = compiled_rows(setup, backbone, prepared["checkpoint"], prepared["calibration"], specs)
    results["notes"] += [f"{backbone}: {note}" for note in outcome["notes"]]
    options = row_options(setup, COMPILED) if compile_option_exists() else None
    for measured in outcome["rows"]:
        row = placeholders[measured["windows_target"]]
        output = Path(next(s["output"] for s in specs if s["windows"] == measured["windows_target"]))
        finish_row(row, measured, measured["peak_mib"], output)
        row.update(
            classes=len(setup.all_classes),
            settings=settings_text(options)
            + (" (2nd process)" if setup.cuda else " (2nd process, not applied)"),
            compiled=outcome.get("compiled", False),
        )
        with np.load(next(s["masks"] for s in specs if s["windows"] == measured["windows_target"])) as stored:
            results["packed"][(backbone, measured["windows_target"], COMPILED)] = {
                int(k): stored[k] for k in stored
            }
    for row in placeholders.values():
        if "seconds" not in row:
            row["skipped"] = outcome["skipped"] or "no result"


def environment_lines(setup: Setup) -> list[str]:
    import monai
    import torch

    lines = [
        f"torch {torch.__version__}, MONAI {monai.__version__}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads"
    ]
    if setup.cuda:
        properties = torch.cuda.get_device_properties(0)
        lines.append(
            f"GPU {properties.name}, {properties.total_memory / 1024**3:.0f} GiB, CUDA {torch.version.cuda}"
        )
    return lines


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--backbones", nargs="+", choices=("swinunetr", "unet"), default=["swinunetr", "unet"]
    )
    parser.add_argument("--windows", nargs="+", type=int, help="window counts of the CTs (default 48 80)")
    parser.add_argument(
        "--rows", nargs="+", choices=ROWS, default=list(ROWS), help="rows to run (default all)"
    )
    parser.add_argument("--budget-s", type=float, default=330.0, help="skip remaining rows past this (s)")
    parser.add_argument(
        "--tiny", action="store_true", help="CPU smoke test: small CT, roi 16, U-Net, 3 classes, 3 windows"
    )
    parser.add_argument(
        "--positive-share",
        type=float,
        help=f"share of the centre window each class's calibrated mask covers (default {POSITIVE_SHARE}, "
        f"{TINY_POSITIVE_SHARE} with --tiny)",
    )
    parser.add_argument(
        "--out-dir", type=Path, help="CTs, checkpoints, outputs (default: a temporary folder)"
    )
    parser.add_argument("--json-out", type=Path, help="also write the rows as JSON")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tiny:
        args.backbones = ["unet"]
        args.windows = args.windows or [3]
        args.positive_share = args.positive_share or TINY_POSITIVE_SHARE
    args.positive_share = args.positive_share or POSITIVE_SHARE
    if not 0 < args.positive_share < 1:
        parser.error(f"--positive-share must be between 0 and 1, got {args.positive_share}")
    args.windows = args.windows or [48, 80]
    return args


def run(args: argparse.Namespace, out_dir: Path) -> dict:
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU is available here: use --device cpu (with --tiny for a quick check)")
    os.environ["UNIVERSALSEG_HOME"] = str(out_dir / "universalseg_home")  # a cold compile cache, own rates
    setup = Setup(
        args.device,
        TINY_ROI if args.tiny else 96,
        TINY_CLASSES if args.tiny else ALL_CLASSES,
        LIVER_CLASSES,
        out_dir,
        share=args.positive_share,
        budget_s=args.budget_s,
    )
    cts, ct_lines = prepare_cts(setup, args.windows, args.tiny)
    results: dict = {"rows": [], "notes": [], "packed": {}, "references": {}, "positive_share": {}}
    prepared = {b: run_backbone(setup, b, cts, args.rows, results) for b in args.backbones}
    if COMPILED in args.rows:
        for backbone in args.backbones:
            add_compiled_rows(setup, backbone, prepared[backbone], cts, results)
    add_comparisons(results["rows"], results["references"], results["packed"])
    order = {
        (b, ct["windows"], r): i
        for i, (b, ct, r) in enumerate((b, ct, r) for b in args.backbones for ct in cts for r in ROWS)
    }
    rows = sorted(results["rows"], key=lambda r: order[(r["backbone"], r["windows_target"], r["row"])])
    meta = {
        "device": args.device,
        "environment": environment_lines(setup),
        "cts": ct_lines,
        "roi_size": setup.roi_size,
        "classes": list(setup.all_classes),
        "budget_s": args.budget_s,
        "elapsed_s": time.perf_counter() - setup.start,
        "positive_share": results["positive_share"],
    }
    return {"meta": meta, "rows": rows, "notes": results["notes"]}


def report(summary: dict) -> str:
    meta, cuda = summary["meta"], summary["meta"]["device"].startswith("cuda")
    lines = [
        f"# GPU benchmark (issue #13), device {meta['device']}",
        "",
        *meta["environment"],
        *meta["cts"],
        "",
    ]
    lines.append(
        "Weights: random init in the released layout, per-class calibrated logits (the same in every row). "
        "Models are on the device before timing (loaded once, as in a batch); every row is timed after an "
        "untimed warm-up (one full pass per backbone; on CUDA also one forward pass per row's precision "
        "and windows per pass). Peak memory: "
        + (
            "torch.cuda.max_memory_allocated per row (weights included)."
            if cuda
            else "peak RSS (VmHWM) per row."
        )
    )
    lines += ["", format_table(summary["rows"], cuda), ""]
    lines += [f"- {note}" for note in summary["notes"]]
    warnings = {w for row in summary["rows"] for w in row.get("warnings", [])}
    lines += [f"- warning from a run: {w}" for w in sorted(warnings)]
    lines.append(f"- whole benchmark: {meta['elapsed_s']:.0f} s (budget {meta['budget_s']:g} s)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        run_child(args.child)
        return
    from UniversalSegLib.inference.lean_import import import_monai_lean

    signal.signal(signal.SIGTERM, _stop_children)
    signal.signal(signal.SIGINT, _stop_children)
    import_monai_lean()
    if args.out_dir:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        summary = run(args, args.out_dir.resolve())
    else:
        with tempfile.TemporaryDirectory(prefix="gpu_speed_") as folder:
            summary = run(args, Path(folder))
    print(report(summary))
    if args.json_out:
        from UniversalSegLib.io import atomic_write_text

        atomic_write_text(args.json_out, json.dumps(summary, indent=2), overwrite=True)


if __name__ == "__main__":
    main()
