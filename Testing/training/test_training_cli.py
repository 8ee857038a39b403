"""Entry points: mistakes fail before data and model are built (one message, exit 2); SIGTERM exits 143;
evaluate reports each case; every epoch leaves a summary line on stdout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_config  # noqa: E402

import training.train as train_module  # noqa: E402
from training import evaluate, prepare  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


def _write_config(ct_dir: Path, folder: Path, **extra) -> Path:
    raw = make_config(ct_dir, folder, extra=extra).raw
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def nothing_heavy(monkeypatch):
    """Fail the test if a training run builds its data loader or its model."""

    def forbidden(*_, **__):
        raise AssertionError("built data or model before the configuration was checked")

    monkeypatch.setattr(train_module, "build_train_loader", forbidden)
    monkeypatch.setattr(train_module, "build_training_model", forbidden)


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    return err


def test_missing_image_fails_prepare_and_train_at_once(ct_dir, tmp_path, capsys, nothing_heavy):
    config = _write_config(ct_dir, tmp_path)
    raw = yaml.safe_load(config.read_text())
    raw["datasets"][0]["cases"][1][0] = str(tmp_path / "gone.nii.gz")
    config.write_text(yaml.safe_dump(raw))
    assert prepare.main([str(config)]) == 2
    assert f"dataset 'A' image: {tmp_path / 'gone.nii.gz'} (missing)" in _one_error_line(capsys)
    assert train_module.main([str(config)]) == 2
    assert "gone.nii.gz (missing)" in _one_error_line(capsys)


def test_missing_embeddings_file_fails_before_building(ct_dir, tmp_path, capsys, nothing_heavy):
    config = _write_config(ct_dir, tmp_path, model={"embeddings": str(tmp_path / "txt_encoding.pth")})
    assert train_module.main([str(config)]) == 2
    assert f"model.embeddings: {tmp_path / 'txt_encoding.pth'} (missing)" in _one_error_line(capsys)


def test_unreadable_embeddings_file_fails_before_building(ct_dir, tmp_path, capsys, nothing_heavy):
    garbage = tmp_path / "txt_encoding.pth"
    garbage.write_text("not a tensor file")
    config = _write_config(ct_dir, tmp_path, model={"embeddings": str(garbage)})
    assert train_module.main([str(config)]) == 2
    err = _one_error_line(capsys)
    assert f"model.embeddings: {garbage} cannot be read as class embeddings" in err and len(err) < 500


def test_resuming_a_released_checkpoint_fails_before_building(ct_dir, tmp_path, capsys, nothing_heavy):
    from UniversalSegLib.testing import write_random_checkpoint

    released = write_random_checkpoint(tmp_path / "released.pth", backbone="unet", layout="official")
    config = _write_config(ct_dir, tmp_path)
    assert train_module.main([str(config), "--resume", str(released)]) == 2
    err = _one_error_line(capsys)
    assert "released.pth has no training state" in err and "model.init_checkpoint" in err


def test_swin_with_a_32_cube_window_fails_before_building(ct_dir, tmp_path, capsys, nothing_heavy):
    config = _write_config(ct_dir, tmp_path, data={"roi_size": 32})
    assert train_module.main([str(config), "--backbone", "swinunetr"]) == 2
    err = _one_error_line(capsys)
    assert "data.roi_size 32 does not fit the swinunetr backbone" in err and "at least 64" in err


def test_unprepared_cases_fail_before_building(ct_dir, tmp_path, capsys, nothing_heavy):
    config = _write_config(ct_dir, tmp_path)
    assert train_module.main([str(config)]) == 2
    assert "not prepared or out of date" in _one_error_line(capsys)


def test_evaluate_prints_one_line_per_case_as_it_goes(ct_dir, tmp_path, capsys, monkeypatch):
    from UniversalSegLib.testing import write_random_checkpoint

    config_path = _write_config(ct_dir, tmp_path)
    raw = yaml.safe_load(config_path.read_text())
    raw["datasets"] = raw["datasets"][:1]
    raw["datasets"][0]["val_cases"], raw["datasets"][0]["cases"] = raw["datasets"][0]["cases"], []
    config_path.write_text(yaml.safe_dump(raw))
    assert prepare.main([str(config_path), "--workers", "1"]) == 0
    weights = write_random_checkpoint(tmp_path / "model.pth", backbone="unet")

    def bright_is_liver(model, image, roi_size, device, amp_dtype=None):  # a full CPU pass takes a minute
        print("INFERENCE", flush=True)
        probabilities = torch.zeros((model.num_classes, *image.shape[1:]))
        probabilities[5] = ((image[0] > 0.55) & (image[0] < 0.75)).float()
        return probabilities

    monkeypatch.setattr(evaluate, "predict_volume", bright_is_liver)
    capsys.readouterr()
    assert evaluate.main([str(config_path), "--weights", str(weights), "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line[:6] for line in lines[:4]] == ["INFERE", "[1/2] ", "INFERE", "[2/2] "]  # one line per case
    assert lines[1].startswith("[1/2] A case0_ct_") and "Dice spleen 0.000, liver 0." in lines[1]
    assert lines[-1].startswith("Wrote ") and any("liver  Dice" in line for line in lines[4:])


def test_sigterm_saves_last_and_exits_143_after_epoch_lines(ct_dir, tmp_path):
    config = _write_config(ct_dir, tmp_path, data={"roi_size": 16}, train={"epochs": 100})
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "training.prepare", str(config), "--workers", "1"],
        cwd=REPO_ROOT, env=env, check=True, capture_output=True,
    )  # fmt: skip
    stderr_path = tmp_path / "stderr.txt"
    with open(stderr_path, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "training.train", str(config), "--device", "cpu"],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
        )  # fmt: skip
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("epoch 1/100 "):
                process.send_signal(signal.SIGTERM)
                break
        rest, _ = process.communicate(timeout=300)
    lines += rest.splitlines(keepends=True)
    assert process.returncode == 143, stderr_path.read_text()[-2000:]
    assert lines[0].startswith("Training tiny: epoch 0 of 100")
    epoch_line = next(line for line in lines if line.startswith("epoch 1/100 "))
    assert "loss " in epoch_line and "lr " in epoch_line and " s " in epoch_line
    last = tmp_path / "run" / "checkpoints" / "last.pth"
    message = stderr_path.read_text()
    assert f"checkpoint saved to {last}" in message and f"--resume {last}" in message
    assert "training_state" in torch.load(last, weights_only=True)
