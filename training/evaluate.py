"""``python -m training.evaluate CONFIG --weights CKPT``: Dice and NSD per class and dataset, CSV + plot.

Cases are the prepared validation cases (``--split val``, default) or training cases. Inference is a
sliding window over the prepared volume (``data.spacing``) blended with the official (MONAI 0.9.0)
Gaussian, as ``universalseg segment`` and the official validation do; ``--postprocess`` adds the
official per-organ post-processing (``UniversalSegLib.inference.postprocessing``). A class is scored
where the dataset annotates it and its ground truth is non-empty (as the official ``dice_score``
reporting). One progress line per case.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from UniversalSegLib.inference.postprocessing import postprocess_masks, required_classes
from UniversalSegLib.inference.weight_map import window_weight_map
from UniversalSegLib.io.atomic import atomic_write_bytes

from . import command
from .config import TrainingConfig, load_config
from .datasets import prepared_items
from .distributed import DistInfo, gather_objects, shard_indices
from .errors import ConfigError, brief
from .metrics import dice_score, normalized_surface_dice
from .transforms import validation_transforms

CSV_FIELDS = ("dataset", "case_id", "class_index", "class_key", "dice", "nsd")
OFFICIAL_CLASSES = 32  # the post-processing rules know the official classes only


@torch.no_grad()
def predict_volume(
    model: torch.nn.Module,
    image: torch.Tensor,
    roi_size: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
    overlap: float = 0.5,
) -> torch.Tensor:
    """Sigmoid probabilities [C, X, Y, Z] of a scaled image [1, X, Y, Z] (sliding window, blended with the
    official MONAI-0.9.0 Gaussian map, like ``universalseg segment``)."""
    from monai.inferers import sliding_window_inference

    was_training = model.training
    model.eval()
    autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext()
    with autocast:
        weights = window_weight_map("gaussian", roi_size).to(device)[None, None]
        logits = sliding_window_inference(
            image[None].to(device), (roi_size,) * 3, 1, model, overlap=overlap, roi_weight_map=weights
        )
    model.train(was_training)
    return torch.sigmoid(logits[0].float()).cpu()


def evaluate_cases(
    config: TrainingConfig,
    model: torch.nn.Module,
    device: torch.device,
    split: str = "val",
    nsd_tolerance_mm: float | None = 2.0,
    amp_dtype: torch.dtype | None = None,
    progress: Callable[[str], None] | None = None,
    postprocess: bool = False,
    dist_info: DistInfo | None = None,
) -> list[dict[str, Any]]:
    """One row per (case, annotated class with non-empty ground truth), in case order.

    Args:
        progress: called with one line per finished case (``[i/n] dataset case: Dice per class (s)``).
        dist_info: in a distributed run, each process scores its share of the cases
            (:func:`~.distributed.shard_indices`) and every process returns all rows, in the same order
            as a single process would (call it on every process).
        postprocess: apply the official per-organ post-processing to the thresholded predictions
            first (as the official ``validation.py``; the classes its rules need are predicted too).
    """
    transform = validation_transforms(config.data)
    spacing = (config.data.spacing,) * 3
    rows = []
    cases = [
        (spec, item)
        for spec in config.datasets
        for item in prepared_items(config, spec, validation=split == "val")
    ]
    info = dist_info or DistInfo()
    for position in shard_indices(len(cases), info.rank, info.world_size):
        (spec, item), number = cases[position], position + 1
        started, first_row = time.perf_counter(), len(rows)
        data = transform(item)
        probabilities = predict_volume(
            model, data["image"].as_tensor(), config.data.roi_size, device, amp_dtype
        )
        target = data["target"].numpy()
        masks = _predicted_masks(probabilities, spec.classes, postprocess)
        for index in spec.classes:
            truth = target[index - 1] == 1
            if not truth.any():
                continue
            prediction = masks[index]
            nsd = (
                normalized_surface_dice(prediction, truth, spacing, nsd_tolerance_mm)
                if nsd_tolerance_mm is not None
                else float("nan")
            )
            rows.append(
                {
                    "dataset": spec.key,
                    "case_id": item["case_id"],
                    "class_index": index,
                    "class_key": config.class_table.resolve_key(index),
                    "dice": dice_score(prediction, truth),
                    "nsd": nsd,
                }
            )
        if progress:
            scores = (
                ", ".join(f"{row['class_key']} {row['dice']:.3f}" for row in rows[first_row:]) or "no class"
            )
            progress(
                f"[{number}/{len(cases)}] {spec.key} {item['case_id']}: Dice {scores} "
                f"({time.perf_counter() - started:.1f} s)"
            )
    return _gather_in_case_order(rows, cases, info)


def _gather_in_case_order(
    rows: list[dict[str, Any]], cases: list[tuple[Any, dict[str, Any]]], info: DistInfo
) -> list[dict[str, Any]]:
    """Every process's rows, ordered by case as one process lists them (a case's rows keep their order)."""
    if not info.enabled:
        return rows
    position = {(spec.key, item["case_id"]): number for number, (spec, item) in enumerate(cases)}
    merged = [row for part in gather_objects(rows, info) for row in part]
    return sorted(merged, key=lambda row: position[(row["dataset"], row["case_id"])])  # stable


def mean_dice_per_class(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean Dice of each class key over the rows (cases where it is annotated and present)."""
    by_class: dict[str, list[float]] = {}
    for row in rows:
        by_class.setdefault(row["class_key"], []).append(row["dice"])
    return {key: float(np.mean(values)) for key, values in by_class.items()}


def _predicted_masks(
    probabilities: torch.Tensor, classes: list[int], postprocess: bool
) -> dict[int, np.ndarray]:
    """Thresholded (> 0.5) masks of ``classes``, optionally post-processed by the official rules."""
    official = [index for index in classes if index <= OFFICIAL_CLASSES]
    wanted = set(classes) | (required_classes(official) if postprocess else set())
    masks = {index: probabilities[index - 1].numpy() > 0.5 for index in sorted(wanted)}
    if postprocess:
        processed = postprocess_masks({index: masks[index] for index in masks if index <= OFFICIAL_CLASSES})
        masks.update(processed)
    return masks


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean Dice/NSD per (dataset, class) and per class over all datasets (dataset ``ALL``)."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for row in rows:
        for dataset in (row["dataset"], "ALL"):
            groups.setdefault((dataset, row["class_index"], row["class_key"]), []).append(row)
    return [
        {
            "dataset": dataset,
            "case_id": f"mean of {len(items)}",
            "class_index": index,
            "class_key": key,
            "dice": float(np.mean([r["dice"] for r in items])),
            "nsd": float(np.nanmean([r["nsd"] for r in items]))
            if not all(np.isnan(r["nsd"]) for r in items)
            else float("nan"),
        }
        for (dataset, index, key), items in sorted(groups.items(), key=lambda kv: (kv[0][0] == "ALL", kv[0]))
    ]


def write_csv(rows: list[dict[str, Any]], path: Path, overwrite: bool = False) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode(), overwrite)


def write_plot(summary: list[dict[str, Any]], path: Path, overwrite: bool = False) -> None:
    """Bar chart of the mean Dice per class, one bar group per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({row["dataset"] for row in summary})
    classes = sorted({(row["class_index"], row["class_key"]) for row in summary})
    figure, axis = plt.subplots(figsize=(max(6, 0.5 * len(classes) * len(datasets) + 2), 4))
    width = 0.8 / max(len(datasets), 1)
    for number, dataset in enumerate(datasets):
        values = {(r["class_index"], r["class_key"]): r["dice"] for r in summary if r["dataset"] == dataset}
        axis.bar(
            [i + number * width for i in range(len(classes))],
            [values.get(c, 0.0) for c in classes],
            width=width,
            label=dataset,
        )
    axis.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(classes))],
        [key for _, key in classes],
        rotation=60,
        ha="right",
    )
    axis.set_ylim(0, 1)
    axis.set_ylabel("Dice")
    axis.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue(), overwrite)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=command("evaluate"), description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("--weights", required=True, help="checkpoint (ours or official layout)")
    parser.add_argument("--split", choices=["val", "train"], default="val")
    parser.add_argument("--nsd-tolerance", type=float, default=2.0, help="NSD tolerance in mm (default 2)")
    parser.add_argument("--out", help="output folder (default: <output_dir>/evaluation)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--overwrite", action="store_true", help="replace existing CSV/plot files")
    parser.add_argument(
        "--postprocess",
        action="store_true",
        help="apply the official per-organ post-processing before scoring (as the official validation.py)",
    )
    args = parser.parse_args(argv)
    from UniversalSegLib.weights.checkpoint import load_model

    try:
        config = load_config(args.config)
        for spec in config.datasets:  # prepared and current, before the model is loaded
            prepared_items(config, spec, validation=args.split == "val")
        out = Path(args.out) if args.out else config.output_dir / "evaluation"
        outputs = (out / f"metrics_{args.split}.csv", out / f"dice_{args.split}.png")
        existing = [str(p) for p in outputs if p.exists()]
        if existing and not args.overwrite:
            raise ConfigError(
                f"{', '.join(existing)} exist(s); pass --overwrite or choose another --out folder."
            )
        device = torch.device(args.device)
        try:
            model = load_model(args.weights, device=device)
        except (OSError, ValueError, RuntimeError) as error:
            raise ConfigError(f"--weights {args.weights} cannot be loaded ({brief(error)})") from None
        if model.num_classes != config.num_classes:
            raise ConfigError(
                f"{args.weights} has {model.num_classes} classes; the config defines {config.num_classes}."
            )
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = evaluate_cases(
        config,
        model,
        device,
        args.split,
        args.nsd_tolerance,
        progress=lambda line: print(line, flush=True),
        postprocess=args.postprocess,
    )
    summary = summarize(rows)
    write_csv(rows + summary, outputs[0], args.overwrite)
    write_plot(summary, outputs[1], args.overwrite)
    for row in summary:
        if row["dataset"] == "ALL":
            print(f"{row['class_key']:>24s}  Dice {row['dice']:.4f}  NSD {row['nsd']:.4f}")
    print(f"Wrote {outputs[0]} and {outputs[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
