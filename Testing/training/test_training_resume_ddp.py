"""Training loop: exact resume, 2-process DDP equals single process (training and validation), resume
checks on another number of processes, checkpoints load for inference."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_cases, make_config, write_crop  # noqa: E402

from training.config import load_config  # noqa: E402
from training.evaluate import evaluate_cases  # noqa: E402
from training.prepare import prepare  # noqa: E402
from training.train import Trainer, main  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
# Global batch 2: single process = batch 1 x gradient accumulation 2; DDP = batch 1 on each of 2 ranks.
# SGD keeps the update linear in the gradient: Adam would turn float-rounding noise in near-zero
# gradients (e.g. conv biases before batch norm) into full-size steps, so runs could not be compared.
SINGLE = {"data": {"roi_size": 16}, "train": {"accumulate": 2, "optimizer": "sgd", "lr": 0.01}}


# Small validation crops (32 x 24 x 12 voxels at 3 mm) with spleen, liver and a kidney: a few windows each.
VALIDATION_CROPS = {
    "val0": (slice(32, 64), slice(36, 60), slice(16, 28)),
    "val1": (slice(32, 64), slice(32, 56), slice(18, 30)),
}


def _validation_cases(ct_dir: Path, folder: Path) -> list[list[str]]:
    source = ct_dir / "totalseg_example"
    folder.mkdir(parents=True, exist_ok=True)
    pairs = []
    for name, crop in VALIDATION_CROPS.items():
        image, label = folder / f"{name}_ct.nii.gz", folder / f"{name}_seg.nii.gz"
        write_crop(source / "example_ct_sm.nii.gz", crop, image)
        write_crop(source / "example_seg.nii.gz", crop, label)
        pairs.append([str(image), str(label)])
    return pairs


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def reference(ct_dir, tmp_path_factory):
    """Two optimizer steps (four batches, mid-epoch of epoch 0 ... end of epoch 0) without interruption."""
    folder = tmp_path_factory.mktemp("reference")
    config = make_config(ct_dir, folder, extra=SINGLE)
    prepare(config, workers=1, show_progress=False)
    trainer = Trainer(config, show_progress=False)
    trainer.fit(max_steps=2)
    assert trainer.step == 2
    return config, folder / "run" / "checkpoints" / "last.pth"


def test_resume_gives_identical_weights(reference, ct_dir, tmp_path):
    _, reference_checkpoint = reference
    config = make_config(ct_dir, tmp_path, extra=SINGLE)
    prepare(config, workers=1, show_progress=False)
    first = Trainer(config, show_progress=False)
    first.fit(max_steps=1)  # stops after 2 of the epoch's 4 batches
    checkpoint = tmp_path / "run" / "checkpoints" / "last.pth"
    assert torch.load(checkpoint, weights_only=True)["training_state"]["epoch_batches"] == 2
    second = Trainer(config, show_progress=False)
    second.resume(checkpoint)
    second.fit(max_steps=2)
    expected, got = _state(reference_checkpoint), _state(checkpoint)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    initial = Trainer(config, show_progress=False).model.state_dict()
    assert not torch.equal(initial["controller.weight"], got["controller.weight"])  # it did train


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_refuses_a_mid_epoch_checkpoint_on_another_number_of_processes(
    reference, tmp_path, monkeypatch, capsys
):
    config, checkpoint = reference  # saved by 1 process in the middle of its epoch
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config.raw))
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun --nproc-per-node 2 would start it
    assert main([str(config_path), "--resume", str(checkpoint)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "Resume it with 1 process(es)" in error, error


@pytest.mark.slow  # two torchrun processes (3 steps, one validation) and a 1-process resume
def test_two_process_ddp_matches_single_process(reference, ct_dir, tmp_path, capsys, monkeypatch):
    """2 ranks x batch 1 = 1 rank x accumulate 2; validation split over the ranks equals one process's;
    their mid-epoch checkpoint is refused on 1 process, their epoch-end checkpoint is re-sharded."""
    _, reference_checkpoint = reference
    pairs = make_cases(ct_dir, tmp_path / "data")
    validation = _validation_cases(ct_dir, tmp_path / "data")
    datasets = [
        {
            "key": "A",
            "cases": [list(p) for p in pairs],
            "val_cases": validation,
            "label_map": {1: "spleen", 5: "liver"},
        },
        {
            "key": "B",
            "cases": [list(p) for p in pairs],
            "val_cases": validation[:1],  # 3 validation cases: uneven over 2 processes
            "label_map": {2: "kidney_right", 3: "kidney_right"},
            "rl_split": [["kidney_right", "kidney_left"]],
        },
    ]
    reference_config = make_config(ct_dir, tmp_path / "unused", extra=SINGLE).raw
    raw = {
        **reference_config,
        "datasets": datasets,
        "output_dir": str(tmp_path / "run"),
        "cache_dir": str(tmp_path / "cache"),
    }
    raw["train"] = {**raw["train"], "accumulate": 1, "val_every": 1, "save_every": 1}
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    subprocess.run(
        [sys.executable, "-m", "training.prepare", str(config_path), "--workers", "1"],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(_free_port()),
        "-m",
        "training.train",
        str(config_path),
        "--device",
        "cpu",
        "--max-steps",
        "3",  # epoch 1 (2 steps per rank), validation, epoch_1.pth; 1 step of epoch 2, last.pth
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    got = _state(checkpoints / "epoch_1.pth")
    expected = _state(reference_checkpoint)
    parameters = [
        k for k in expected if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    for key in parameters:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-7, msg=key)
    _check_validation_equals_single_process(config_path, checkpoints / "epoch_1.pth", tmp_path)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _check_resume_on_one_process(config_path, checkpoints, capsys)


def _check_validation_equals_single_process(config_path: Path, checkpoint: Path, tmp_path: Path) -> None:
    """The CSV the 2 ranks wrote after epoch 1 equals one process's validation of the same weights."""
    from UniversalSegLib.weights.checkpoint import load_model

    config = load_config(config_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the ranks (OMP_NUM_THREADS=1): the same convolution arithmetic
    try:
        rows = evaluate_cases(config, load_model(checkpoint), torch.device("cpu"), nsd_tolerance_mm=None)
    finally:
        torch.set_num_threads(threads)
    with open(tmp_path / "run" / "validation" / "epoch_1.csv", newline="") as handle:
        written = [row for row in csv.DictReader(handle)]
    per_case = [row for row in written if not row["case_id"].startswith("mean of")]
    assert [(r["dataset"], r["case_id"], int(r["class_index"])) for r in per_case] == [
        (r["dataset"], r["case_id"], r["class_index"]) for r in rows
    ]
    assert len({(r["dataset"], r["case_id"]) for r in per_case}) == 3  # 2 on rank 0, 1 on rank 1
    assert [float(r["dice"]) for r in per_case] == [r["dice"] for r in rows]


def _check_resume_on_one_process(config_path: Path, checkpoints: Path, capsys) -> None:
    """last.pth (mid-epoch 2, 2 ranks) is refused on 1 process; epoch_1.pth is re-sharded and trains."""
    assert main([str(config_path), "--resume", str(checkpoints / "last.pth"), "--device", "cpu"]) == 2
    error = capsys.readouterr().err
    assert "saved in the middle of epoch 2" in error and "Resume it with 2 process(es)" in error, error
    arguments = [str(config_path), "--resume", str(checkpoints / "epoch_1.pth"), "--max-steps", "3"]
    assert main([*arguments, "--device", "cpu"]) == 0
    output = capsys.readouterr().out
    assert "Resuming an epoch-end checkpoint of 2 process(es) on 1" in output, output
    state = torch.load(checkpoints / "last.pth", weights_only=True)["training_state"]
    assert (state["step"], state["world_size"], state["resume_record"]["world_size"]) == (3, 1, 1)


def test_checkpoints_load_for_inference_and_export_official(reference, tmp_path):
    from training.export import export
    from UniversalSegLib.weights.checkpoint import load_model

    config, checkpoint = reference
    ours = load_model(checkpoint)  # the training checkpoint loads directly
    assert ours.class_names[5] == "Liver" and ours.metadata["training_config"]["name"] == "tiny"
    official = export(checkpoint, tmp_path / "official.pth", official=True)
    raw = torch.load(official, weights_only=True)
    assert set(raw) == {"net"} and all(key.startswith("module.") for key in raw["net"])
    reloaded = load_model(official)
    assert reloaded.metadata["source_format"] == "official"
    torch.manual_seed(0)
    image = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(image), ours(image), rtol=0, atol=0)
    plain = export(checkpoint, tmp_path / "ours.pth")
    assert "training_state" not in torch.load(plain, weights_only=True)
    with pytest.raises(FileExistsError):
        export(checkpoint, plain)
