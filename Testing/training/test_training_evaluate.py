"""Evaluation: Dice/NSD rows per case and class, summary per dataset, CSV and plot files."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_cases, make_config  # noqa: E402

from training.evaluate import evaluate_cases, summarize, write_csv, write_plot  # noqa: E402
from training.metrics import dice_score  # noqa: E402
from training.prepare import case_jobs, prepare  # noqa: E402


class BrightIsLiver(torch.nn.Module):
    """A stand-in network: channel 5 (liver) is 'on' where the scaled intensity is in the soft-tissue band."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = torch.full((image.shape[0], 32, *image.shape[2:]), -10.0)
        logits[:, 5] = torch.where((image[:, 0] > 0.55) & (image[:, 0] < 0.75), 10.0, -10.0)
        return logits


def test_evaluate_writes_metrics_per_class_and_dataset(ct_dir, tmp_path):
    pairs = make_cases(ct_dir, tmp_path / "data")
    extra = {"datasets": [
        {"key": "A", "cases": [], "val_cases": [list(pairs[0])], "label_map": {1: "spleen", 5: "liver"}},
    ]}  # fmt: skip
    config = make_config(ct_dir, tmp_path, extra=extra)
    prepare(config, workers=1, show_progress=False)
    rows = evaluate_cases(config, BrightIsLiver(), torch.device("cpu"), nsd_tolerance_mm=3.0)
    by_class = {row["class_key"]: row for row in rows}
    assert set(by_class) == {"spleen", "liver"}
    assert by_class["spleen"]["dice"] == 0.0 and by_class["spleen"]["nsd"] == 0.0
    with np.load(case_jobs(config, config.dataset("A"), validation=True)[0].output + ".npz") as data:
        scaled = np.clip((data["image"] + 175) / 425, 0, 1)
        liver = data["target"][5] == 1
    expected = dice_score((scaled > 0.55) & (scaled < 0.75), liver)  # the stand-in is voxel-wise
    assert by_class["liver"]["dice"] == pytest.approx(expected, abs=1e-6) and 0 < expected < 1
    assert 0.0 < by_class["liver"]["nsd"] <= 1.0
    summary = summarize(rows)
    assert {(r["dataset"], r["class_key"]) for r in summary} == {
        ("A", "spleen"),
        ("A", "liver"),
        ("ALL", "spleen"),
        ("ALL", "liver"),
    }
    write_csv(rows + summary, tmp_path / "out" / "metrics.csv")
    write_plot(summary, tmp_path / "out" / "dice.png")
    with open(tmp_path / "out" / "metrics.csv") as stream:
        assert len(list(csv.DictReader(stream))) == 6
    assert (tmp_path / "out" / "dice.png").read_bytes()[:4] == b"\x89PNG"
