"""``python -m training.prepare CONFIG``: label transfer for every case, cached on disk.

Per case: load image + label, reorient to RAS, map label values to universal classes, split paired
organs left/right, resample to the configured spacing (image bilinear, labels nearest) and store
``<cache_dir>/<dataset>/<case>.npz`` (``image`` float32 HU [X,Y,Z], ``target`` uint8 [C,X,Y,Z] with
255 = not annotated) plus a JSON sidecar written last. Current cases are skipped; a case whose input
files or settings changed is prepared again (see ``case_cache``); runs in a process pool. Afterwards
the label values found are compared with each dataset's ``label_map``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd
from tqdm import tqdm

from UniversalSegLib.io.atomic import atomic_output, atomic_write_text

from . import command
from .case_cache import CaseJob, case_id_for, case_jobs, case_status, file_state, is_done, refresh_sidecar
from .config import TrainingConfig, load_config
from .errors import ConfigError
from .label_check import check_label_values
from .label_transfer import combination_map, expand_target

__all__ = ["CaseJob", "case_id_for", "case_jobs", "is_done", "prepare", "prepare_case", "load_ras"]

# spawn, not fork: forking a process whose OpenMP threads were used (torch) can hang the workers
_START_METHOD = "spawn"
_MAX_REASONS_LOGGED = 20
log = logging.getLogger(__name__)


def load_ras(image: str, label: str, spacing: float | None = None) -> dict[str, Any]:
    """Load an image/label pair as MONAI MetaTensors [1,X,Y,Z] in RAS (optionally resampled)."""
    steps = [
        LoadImaged(keys=["image", "label"], image_only=True),
        EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS", labels=None),
    ]
    if spacing:
        steps.append(Spacingd(keys=["image", "label"], pixdim=(spacing,) * 3, mode=("bilinear", "nearest")))
    return Compose(steps)({"image": image, "label": label})


def prepare_case(job: CaseJob) -> str:
    """Run the label transfer for one case and write its cache files. Returns the case id."""
    inputs = {role: file_state(getattr(job, role)) for role in ("image", "label")}  # before reading them
    data = load_ras(job.image, job.label)
    if tuple(data["image"].shape) != tuple(data["label"].shape):
        raise ValueError(f"{job.image} and {job.label} have different sizes.")
    raw_label = np.rint(data["label"][0].numpy()).astype(np.int64)
    values, counts = np.unique(raw_label, return_counts=True)
    combo, combos = combination_map(raw_label, job.label_map, job.rl_split)
    data["label"] = data["label"].clone()
    data["label"][0] = torch_from(combo)
    data = Spacingd(keys=["image", "label"], pixdim=(job.spacing,) * 3, mode=("bilinear", "nearest"))(data)
    combo = np.rint(data["label"][0].numpy()).astype(np.int32)
    target = expand_target(combo, combos, job.classes, job.num_classes)
    image = data["image"][0].numpy().astype(np.float32)
    affine = np.asarray(data["image"].affine, dtype=np.float64)
    with atomic_output(job.arrays, overwrite=True) as temporary:
        np.savez_compressed(temporary, image=image, target=target, affine=affine)
    sidecar = {
        "case_id": job.case_id,
        "dataset": job.dataset,
        "image": job.image,
        "label": job.label,
        "classes": job.classes,
        "num_classes": job.num_classes,
        "spacing": job.spacing,
        "shape": list(image.shape),
        "affine": affine.tolist(),
        "fingerprint": job.fingerprint(),
        "inputs": inputs,
        "label_values": {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)},
    }
    atomic_write_text(job.sidecar, json.dumps(sidecar, indent=1), overwrite=True)
    return job.case_id


def _prepare_or_explain(job: CaseJob) -> str:
    try:
        return prepare_case(job)
    except Exception as error:  # unreadable or inconsistent data: name the case, keep one line
        raise ConfigError(
            f"dataset {job.dataset!r}: cannot prepare {job.image} / {job.label}: {error}"
        ) from None


def torch_from(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _init_worker() -> None:
    torch.set_num_threads(1)  # one thread per worker; the pool provides the parallelism


def cases_to_prepare(jobs: list[CaseJob], verify: bool = False) -> list[CaseJob]:
    """The jobs whose cache is missing or stale (logged with the reason); refreshes touched ones."""
    todo, stale = [], []
    for job in jobs:
        status = case_status(job, verify=verify)
        if status.kind == "refresh":
            refresh_sidecar(job, status.files or {})
            log.info("%s/%s: %s; kept", job.dataset, job.case_id, status.reason)
        elif status.kind != "current":
            todo.append(job)
            if status.kind == "stale":
                stale.append(f"re-preparing {job.dataset}/{job.case_id}: {status.reason}")
    for line in stale[:_MAX_REASONS_LOGGED]:
        log.info(line)
    if len(stale) > _MAX_REASONS_LOGGED:
        log.info("... and %d more cases to re-prepare", len(stale) - _MAX_REASONS_LOGGED)
    return todo


def prepare(
    config: TrainingConfig, workers: int | None = None, show_progress: bool = True, verify: bool = False
) -> list[CaseJob]:
    """Prepare every training and validation case that is not current, then check the label values.

    Args:
        config: the training configuration.
        workers: processes (default ``data.prepare_workers``).
        show_progress: show a progress bar.
        verify: hash every input file instead of trusting unchanged size and modification time.

    Returns:
        All jobs (current and new), so callers know where each case lives.

    Raises:
        ConfigError: a case cannot be prepared, or (``strict_labels``) a mapped label value never occurs.
    """
    jobs = [job for spec in config.datasets for val in (False, True) for job in case_jobs(config, spec, val)]
    todo = cases_to_prepare(jobs, verify)
    workers = config.data.prepare_workers if workers is None else workers
    bar = tqdm(total=len(todo), desc="prepare", unit="case", disable=not show_progress or not todo)
    if workers <= 1:
        for job in todo:
            _prepare_or_explain(job)
            bar.update()
    else:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(_START_METHOD),
            initializer=_init_worker,
        ) as pool:
            futures = {pool.submit(_prepare_or_explain, job): job for job in todo}
            for future in as_completed(futures):
                future.result()
                bar.update()
    bar.close()
    check_label_values(config, jobs)
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=command("prepare"), description=__doc__.split("\n")[0])
    parser.add_argument("config", help="training config (YAML or JSON)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: data.prepare_workers)")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="hash every input file, even if its size and mtime are unchanged",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = load_config(args.config)
        jobs = prepare(config, args.workers, verify=args.verify)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(jobs)} cases ready in {config.cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
