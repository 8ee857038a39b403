"""``python -m training.prepare CONFIG``: label transfer for every case, cached on disk.

Per case: load image + label, reorient to RAS, map label values to universal classes, split paired
organs left/right, resample to the configured spacing (image bilinear, labels nearest) and store
``<cache_dir>/<dataset>/<case>.npz`` (``image`` float32 HU [X,Y,Z], ``target`` uint8 [C,X,Y,Z] with
255 = not annotated) plus a JSON sidecar written last. Done cases are skipped; runs in a process pool.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Orientationd, Spacingd
from tqdm import tqdm

from training.config import DatasetSpec, TrainingConfig, load_config
from training.label_transfer import combination_map, expand_target
from UniversalSegLib.io.atomic import atomic_output, atomic_write_text

# spawn, not fork: forking a process whose OpenMP threads were used (torch) can hang the workers
_START_METHOD = "spawn"


@dataclass(frozen=True)
class CaseJob:
    """Everything one worker needs to prepare one case (picklable)."""

    dataset: str
    case_id: str
    image: str
    label: str
    label_map: dict[int, list[int]]
    rl_split: list[tuple[int, int]]
    classes: list[int]
    num_classes: int
    spacing: float
    output: str

    def fingerprint(self) -> str:
        data = [self.image, self.label, sorted(self.label_map.items()), self.rl_split, self.classes]
        data += [self.num_classes, self.spacing]
        return hashlib.sha1(json.dumps(data, default=str).encode()).hexdigest()


def case_id_for(image: str) -> str:
    """A readable, collision-free id for a case: file stem plus a hash of the full path."""
    name = Path(image).name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".mha", ".h5"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return f"{name}_{hashlib.sha1(image.encode()).hexdigest()[:8]}"


def case_jobs(config: TrainingConfig, spec: DatasetSpec, validation: bool = False) -> list[CaseJob]:
    """The prepare jobs of one dataset's training (or validation) cases."""
    pairs = spec.val_cases if validation else spec.cases
    return [
        CaseJob(
            dataset=spec.key,
            case_id=case_id_for(image),
            image=image,
            label=label,
            label_map=spec.label_map,
            rl_split=list(spec.rl_split),
            classes=spec.classes,
            num_classes=config.num_classes,
            spacing=config.data.spacing,
            output=str(config.cache_dir / spec.key / case_id_for(image)),
        )
        for image, label in pairs
    ]


def is_done(job: CaseJob) -> bool:
    """True if the case was prepared with the same inputs and settings."""
    sidecar = Path(job.output + ".json")
    if not sidecar.is_file() or not Path(job.output + ".npz").is_file():
        return False
    try:
        return json.loads(sidecar.read_text(encoding="utf-8")).get("fingerprint") == job.fingerprint()
    except (OSError, json.JSONDecodeError):
        return False


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
    data = load_ras(job.image, job.label)
    if tuple(data["image"].shape) != tuple(data["label"].shape):
        raise ValueError(f"{job.image} and {job.label} have different sizes.")
    raw_label = np.rint(data["label"][0].numpy()).astype(np.int64)
    combo, combos = combination_map(raw_label, job.label_map, job.rl_split)
    data["label"] = data["label"].clone()
    data["label"][0] = torch_from(combo)
    data = Spacingd(keys=["image", "label"], pixdim=(job.spacing,) * 3, mode=("bilinear", "nearest"))(data)
    combo = np.rint(data["label"][0].numpy()).astype(np.int32)
    target = expand_target(combo, combos, job.classes, job.num_classes)
    image = data["image"][0].numpy().astype(np.float32)
    affine = np.asarray(data["image"].affine, dtype=np.float64)
    output = Path(job.output)
    with atomic_output(output.with_suffix(".npz"), overwrite=True) as temporary:
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
    }
    atomic_write_text(output.with_suffix(".json"), json.dumps(sidecar, indent=1), overwrite=True)
    return job.case_id


def torch_from(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.astype(np.float32))


def _init_worker() -> None:
    torch.set_num_threads(1)  # one thread per worker; the pool provides the parallelism


def prepare(config: TrainingConfig, workers: int | None = None, show_progress: bool = True) -> list[CaseJob]:
    """Prepare every training and validation case that is not cached yet.

    Returns:
        All jobs (done and new), so callers know where each case lives.
    """
    jobs = [job for spec in config.datasets for val in (False, True) for job in case_jobs(config, spec, val)]
    todo = [job for job in jobs if not is_done(job)]
    workers = config.data.prepare_workers if workers is None else workers
    bar = tqdm(total=len(todo), desc="prepare", unit="case", disable=not show_progress or not todo)
    if workers <= 1:
        for job in todo:
            prepare_case(job)
            bar.update()
    else:
        with ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context(_START_METHOD),
            initializer=_init_worker,
        ) as pool:
            futures = {pool.submit(prepare_case, job): job for job in todo}
            for future in as_completed(futures):
                future.result()
                bar.update()
    bar.close()
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.prepare", description=__doc__.split("\n")[0])
    parser.add_argument("config", help="training config (YAML or JSON)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: data.prepare_workers)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ValueError as error:  # ConfigError and unknown class references
        parser.error(str(error))
    jobs = prepare(config, args.workers)
    print(f"{len(jobs)} cases ready in {config.cache_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
