"""The prepare cache follows file contents: an edited label is prepared again and the log names it."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_cases, make_config  # noqa: E402

from training.datasets import MissingPreparedDataError, prepared_items  # noqa: E402
from training.errors import ConfigError  # noqa: E402
from training.prepare import case_jobs, prepare  # noqa: E402


def _one_case_config(ct_dir: Path, folder: Path, **dataset):
    pairs = make_cases(ct_dir, folder / "data")[:1]
    entry = {"key": "A", "cases": [list(pairs[0])], "label_map": {1: "spleen", 5: "liver"}, **dataset}
    return make_config(ct_dir, folder, extra={"datasets": [entry]})


def _target(config) -> np.ndarray:
    with np.load(case_jobs(config, config.dataset("A"))[0].output + ".npz") as data:
        return data["target"]


def test_an_edited_label_is_prepared_again_and_named(ct_dir, tmp_path, caplog):
    config = _one_case_config(ct_dir, tmp_path)
    job = case_jobs(config, config.dataset("A"))[0]
    prepare(config, workers=1, show_progress=False)
    before = _target(config)
    spleen, liver = before[0] == 1, before[5] == 1
    assert spleen.any() and liver.any()
    recorded = json.loads(Path(job.output + ".json").read_text())["inputs"]["label"]
    assert recorded["size"] == os.path.getsize(job.label) and len(recorded["sha256"]) == 64

    # Relabel the spleen (1) as liver (5), in place: same path, same settings.
    image = nib.load(job.label)
    data = np.asarray(image.dataobj).copy()
    data[data == 1] = 5
    nib.save(nib.Nifti1Image(data, image.affine, image.header), job.label)
    with pytest.raises(MissingPreparedDataError, match="changed"):  # training refuses the stale case
        prepared_items(config, config.dataset("A"))

    caplog.set_level(logging.INFO)
    prepare(config, workers=1, show_progress=False)
    assert f"re-preparing A/{job.case_id}: label {job.label} changed" in caplog.text
    after = _target(config)
    assert not (after[0] == 1).any()  # no spleen left
    assert np.array_equal(after[5] == 1, liver | spleen)  # the liver took the spleen's voxels
    assert prepared_items(config, config.dataset("A"))  # current again


def test_a_touched_file_is_kept_and_verify_hashes(ct_dir, tmp_path, caplog):
    pairs = make_cases(ct_dir, tmp_path / "data")[:1]
    uncompressed = []  # .nii: a file's size depends only on its grid, so an edit can keep it
    for path in pairs[0]:
        target = tmp_path / Path(path).name.replace(".nii.gz", ".nii")
        nib.save(nib.load(path), str(target))
        uncompressed.append(str(target))
    entry = {"key": "A", "cases": [uncompressed], "label_map": {1: "spleen", 5: "liver"}}
    config = make_config(ct_dir, tmp_path, extra={"datasets": [entry]})
    job = case_jobs(config, config.dataset("A"))[0]
    prepare(config, workers=1, show_progress=False)
    arrays = Path(job.output + ".npz")
    written = arrays.stat().st_mtime_ns
    stat = os.stat(job.image)
    os.utime(job.image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))  # newer time, same bytes
    caplog.set_level(logging.INFO)
    prepare(config, workers=1, show_progress=False)
    assert "content is unchanged; kept" in caplog.text
    assert arrays.stat().st_mtime_ns == written  # not prepared again
    assert prepared_items(config, config.dataset("A"))

    # A same-size rewrite that restores the old mtime escapes size+mtime (documented); --verify hashes.
    label_stat = os.stat(job.label)
    image = nib.load(job.label)
    data = np.asarray(image.dataobj).copy()
    data[data == 1] = 0
    nib.save(nib.Nifti1Image(data, image.affine, image.header), job.label)
    os.utime(job.label, ns=(label_stat.st_atime_ns, label_stat.st_mtime_ns))
    assert os.path.getsize(job.label) == label_stat.st_size
    caplog.clear()
    prepare(config, workers=1, show_progress=False)
    assert "re-preparing" not in caplog.text and (_target(config)[0] == 1).any()
    prepare(config, workers=1, show_progress=False, verify=True)
    assert f"label {job.label} changed (content)" in caplog.text
    assert not (_target(config)[0] == 1).any()


def test_mapped_label_values_that_never_occur_warn_or_fail(ct_dir, tmp_path, caplog):
    config = _one_case_config(ct_dir, tmp_path, label_map={1: "spleen", 5: "liver", 77: "pancreas"})
    caplog.set_level(logging.INFO)
    prepare(config, workers=1, show_progress=False)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "label_map value(s) [77]" in warning[0] and "pancreas" in warning[0]
    assert "label values [2, 3" in caplog.text  # present but unmapped: reported as background
    strict = make_config(
        ct_dir,
        tmp_path,
        extra={"strict_labels": True, "datasets": [{**config.raw["datasets"][0]}]},
    )
    with pytest.raises(ConfigError, match=r"dataset 'A': label_map value\(s\) \[77\]"):
        prepare(strict, workers=1, show_progress=False)
