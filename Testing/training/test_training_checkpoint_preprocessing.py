"""Training checkpoints and their exports carry the training preprocessing, and load_model reads it back."""

from __future__ import annotations

import json

import pytest
import torch

from training.checkpointing import load_training_checkpoint, save_training_checkpoint
from training.export import main as export_main
from UniversalSegLib.inference.preprocessing_settings import (
    OFFICIAL,
    PreprocessingSettings,
    preprocessing_origin,
    preprocessing_settings,
)
from UniversalSegLib.testing import random_model
from UniversalSegLib.weights.checkpoint import CheckpointError, load_model, save_checkpoint
from UniversalSegLib.weights.preprocessing_sidecar import sidecar_path

from .training_helpers import make_config

TRAINED = PreprocessingSettings(spacing_mm=3.0, intensity_min=-100, intensity_max=200, roi_size=32)  # RAS


@pytest.fixture(scope="module")
def training_checkpoint(ct_dir, tmp_path_factory):
    """What training writes for a config with data.spacing 3, a_min/a_max -100/200 and 32³ crops."""
    folder = tmp_path_factory.mktemp("run")
    config = make_config(ct_dir, folder, roi=32, extra={"data": {"a_min": -100.0, "a_max": 200.0}})
    path = folder / "last.pth"
    save_training_checkpoint(path, random_model("unet"), {"epoch": 1}, training_config=config.summary())
    return path


def test_training_checkpoint_round_trip_keeps_the_settings(training_checkpoint) -> None:
    payload = load_training_checkpoint(training_checkpoint)
    assert payload["metadata"]["preprocessing"] == TRAINED.to_metadata()
    model = load_model(training_checkpoint)
    assert preprocessing_settings(model) == TRAINED
    assert preprocessing_origin(model) == "from the checkpoint's training settings"


def test_checkpoints_from_before_the_field_use_their_training_config(training_checkpoint, tmp_path) -> None:
    payload = torch.load(training_checkpoint, weights_only=True)
    del payload["metadata"]["preprocessing"]
    older = tmp_path / "older.pth"
    torch.save(payload, older)
    assert preprocessing_settings(load_model(older)) == TRAINED


def test_export_carries_the_settings_in_both_layouts(training_checkpoint, tmp_path, capsys) -> None:
    ours = tmp_path / "ours.pth"
    assert export_main([str(training_checkpoint), "--out", str(ours)]) == 0
    assert preprocessing_settings(load_model(ours)) == TRAINED
    assert "Preprocessing: 3 mm RAS, intensity -100..200 HU, 32³ windows (stored in the file)" in (
        capsys.readouterr().out
    )
    assert not sidecar_path(ours).exists()

    official = tmp_path / "official.pth"
    assert export_main([str(training_checkpoint), "--out", str(official), "--official"]) == 0
    out = capsys.readouterr().out
    sidecar = tmp_path / "official.preprocessing.json"
    assert set(torch.load(official, weights_only=True)) == {"net"}  # the released layout, nothing added
    assert json.loads(sidecar.read_text()) == TRAINED.to_metadata()
    assert "official.preprocessing.json" in out
    assert "--space_x 3 --space_y 3 --space_z 3 --a_min -100 --a_max 200 --roi_x 32" in out
    model = load_model(official)
    assert preprocessing_settings(model) == TRAINED
    assert preprocessing_origin(model) == "from official.preprocessing.json"

    sidecar.write_text(json.dumps({**TRAINED.to_metadata(), "roi_size": -1}))
    with pytest.raises(CheckpointError, match="official.pth: invalid preprocessing settings in its sidecar"):
        load_model(official)


def test_official_settings_need_no_sidecar_and_a_stale_one_is_replaced(tmp_path, capsys) -> None:
    source = save_checkpoint(random_model("unet"), tmp_path / "source.pth", preprocessing=OFFICIAL)
    official = tmp_path / "official.pth"
    sidecar_path(official).write_text(json.dumps(TRAINED.to_metadata()))  # left from an earlier export
    assert export_main([str(source), "--out", str(official), "--official"]) == 2  # refuses to ignore it
    assert "official.preprocessing.json already exists" in capsys.readouterr().err
    assert export_main([str(source), "--out", str(official), "--official", "--overwrite"]) == 0
    assert "(the official settings)" in capsys.readouterr().out
    assert not sidecar_path(official).exists()
    assert preprocessing_settings(load_model(official)) == OFFICIAL
