"""``--resume`` checks (processes, batch, settings) and ``train.deterministic``; no data, no training."""

from __future__ import annotations

import copy
import os

import pytest
import torch

from training.config import config_from_dict
from training.determinism import SpatialMean, deterministic_pooling, enable_deterministic_algorithms
from training.resume_check import (
    OVERRIDE_FLAG,
    RECORD_KEY,
    ResumeError,
    check_resume,
    fingerprint,
    resume_record,
    resume_settings,
)

RAW = {
    "name": "resume",
    "output_dir": "run",
    "datasets": [
        {
            "key": "A",
            "cases": [["a0.nii.gz", "a0_seg.nii.gz"], ["a1.nii.gz", "a1_seg.nii.gz"]],
            "label_map": {1: "spleen", 5: "liver"},
        },
        {
            "key": "B",
            "cases": [["b0.nii.gz", "b0_seg.nii.gz"]],
            "label_map": {2: "kidney_right"},
            "rl_split": [["kidney_right", "kidney_left"]],
        },
    ],
    "data": {"spacing": 1.5, "roi_size": 32, "batch_size": 1, "num_samples": 2},
    "train": {"lr": 1e-4, "epochs": 10},
}


def _config(tmp_path, **changes):
    """The config of RAW with ``{"section.key": value}`` changes (no file is read or checked)."""
    raw = copy.deepcopy(RAW)
    for dotted, value in changes.items():
        *parents, key = dotted.split(".")
        target = raw
        for part in parents:
            target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
        target[key] = value
    return config_from_dict(raw, tmp_path)


def _checkpoint(config, world_size=1, epoch=3, epoch_batches=0, tmp_path=None):
    """A training checkpoint's ``training_state`` as the trainer writes it (saved and re-read when asked)."""
    payload = {
        "training_state": {
            "epoch": epoch,
            "epoch_batches": epoch_batches,
            "world_size": world_size,
            RECORD_KEY: resume_record(config, world_size),
        }
    }
    if tmp_path is not None:  # through torch.save / weights_only load, as --resume reads it
        torch.save(payload, tmp_path / "state.pth")
        payload = torch.load(tmp_path / "state.pth", weights_only=True)
    return payload


def test_the_same_run_resumes_without_notes(tmp_path):
    config = _config(tmp_path)
    assert check_resume(_checkpoint(config, tmp_path=tmp_path), config, world_size=1) == []
    assert check_resume(_checkpoint(config, 2, epoch_batches=5), config, world_size=2) == []


def test_a_mid_epoch_checkpoint_on_another_number_of_processes_is_refused(tmp_path):
    config = _config(tmp_path)
    with pytest.raises(ResumeError) as caught:
        check_resume(_checkpoint(config, 2, epoch=3, epoch_batches=7), config, 1, source="last.pth")
    message = str(caught.value)
    assert "\n" not in message
    assert "middle of epoch 4 (after 7 batches of 1 per process on 2 process(es))" in message
    assert "Resume it with 2 process(es)" in message and "last epoch-end checkpoint" in message
    # the override flag is about settings; it cannot make a mid-epoch position fit another layout
    with pytest.raises(ResumeError):
        check_resume(_checkpoint(config, 2, epoch_batches=7), config, 1, allow_config_change=True)


def test_a_mid_epoch_checkpoint_with_another_batch_size_is_refused(tmp_path):
    saved = _checkpoint(_config(tmp_path), 1, epoch_batches=4)
    with pytest.raises(ResumeError, match="data.batch_size 1"):
        check_resume(saved, _config(tmp_path, **{"data.batch_size": 2}), 1, allow_config_change=True)


def test_an_epoch_end_checkpoint_is_resharded_with_a_note(tmp_path):
    config = _config(tmp_path)
    notes = check_resume(_checkpoint(config, 2, epoch=3), config, world_size=4)
    assert notes == [
        "Resuming an epoch-end checkpoint of 2 process(es) on 4: the training cases are re-sharded from "
        "epoch 4; crops per optimizer step change from 4 to 8."
    ]


def test_changed_settings_are_refused_by_name(tmp_path):
    saved = _checkpoint(_config(tmp_path), tmp_path=tmp_path)
    changed = _config(
        tmp_path,
        **{"data.spacing": 3.0, "train.lr": 2e-4, "datasets.0.label_map": {1: "spleen", 6: "liver"}},
    )
    with pytest.raises(ResumeError) as caught:
        check_resume(saved, changed, 1, source="last.pth")
    message = str(caught.value)
    assert "\n" not in message and OVERRIDE_FLAG in message
    assert "data.spacing (1.5 -> 3.0)" in message and "train.lr (0.0001 -> 0.0002)" in message
    assert 'datasets.A.label_map ({"1": [1], "5": [6]} -> {"1": [1], "6": [6]})' in message
    assert "output_dir" not in message


def test_the_override_flag_resumes_and_lists_the_changes(tmp_path):
    saved = _checkpoint(_config(tmp_path))
    notes = check_resume(saved, _config(tmp_path, **{"train.epochs": 20}), 1, allow_config_change=True)
    assert notes == [f"Resuming with changed settings ({OVERRIDE_FLAG}): train.epochs (10 -> 20)."]


def test_paths_logging_and_speed_settings_may_change(tmp_path):
    saved = _checkpoint(_config(tmp_path))
    moved = _config(
        tmp_path / "elsewhere",  # every relative path resolves elsewhere
        **{
            "output_dir": "other_run",
            "cache_dir": "other_cache",
            "data.num_workers": 4,
            "data.cache_rate": 1.0,
            "train.val_every": 5,
            "train.save_every": 1,
            "train.amp": "bf16",
            "train.deterministic": True,
        },
    )
    assert check_resume(saved, moved, 1) == []


def test_a_new_class_or_dataset_or_case_count_is_a_change(tmp_path):
    settings = resume_settings(_config(tmp_path))
    assert settings["datasets.A.cases"] == 2 and settings["datasets"] == ["A", "B"]
    for changes in (
        {"new_classes": ["gallbladder polyp"]},
        {"datasets.1.key": "C"},
        {"datasets.0.cases": [["a0.nii.gz", "a0_seg.nii.gz"]]},
        {"model.backbone": "swinunetr", "data.roi_size": 64},
    ):
        other = resume_settings(_config(tmp_path, **changes))
        assert fingerprint(other) != fingerprint(settings), changes


def test_an_old_checkpoint_without_a_record_still_checks_the_process_count(tmp_path):
    config = _config(tmp_path)
    old = {"training_state": {"epoch": 1, "epoch_batches": 3, "world_size": 2}}
    with pytest.raises(ResumeError, match="Resume it with 2"):
        check_resume(old, config, 1)
    old["training_state"]["epoch_batches"] = 0
    notes = check_resume(old, config, 2, source="old.pth")
    assert notes == ["old.pth predates resume records: its settings cannot be compared with the config's."]


@pytest.fixture
def restore_determinism():
    """Undo the process-wide deterministic settings after a test."""
    saved = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    yield
    torch.use_deterministic_algorithms(saved[0])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[1], saved[2]
    if saved[3] is None:
        os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    else:
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = saved[3]


def test_deterministic_mode_sets_torch_cudnn_and_cublas(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    torch.use_deterministic_algorithms(False)
    torch.backends.cudnn.benchmark = True
    enable_deterministic_algorithms()
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_deterministic_pooling_replaces_global_average_pooling_without_changing_results():
    from UniversalSegLib.model import UniversalModel

    torch.manual_seed(0)
    model = UniversalModel("unet", num_classes=3).eval()
    image = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        before = model(image)
    keys = set(model.state_dict())
    assert deterministic_pooling(model) == 1
    assert not any(isinstance(m, torch.nn.AdaptiveAvgPool3d) for m in model.modules())
    assert any(isinstance(m, SpatialMean) for m in model.modules()) and set(model.state_dict()) == keys
    with torch.no_grad():
        torch.testing.assert_close(model(image), before, rtol=1e-5, atol=1e-6)
