"""Training loop: exact resume, 2-process DDP equals single process, checkpoints load for inference."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_cases, make_config  # noqa: E402

from training.prepare import prepare  # noqa: E402
from training.train import Trainer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
# Global batch 2: single process = batch 1 x gradient accumulation 2; DDP = batch 1 on each of 2 ranks.
# SGD keeps the update linear in the gradient: Adam would turn float-rounding noise in near-zero
# gradients (e.g. conv biases before batch norm) into full-size steps, so runs could not be compared.
SINGLE = {"data": {"roi_size": 16}, "train": {"accumulate": 2, "optimizer": "sgd", "lr": 0.01}}


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


@pytest.mark.slow  # two torchrun processes: about 17 s on 2 cores
def test_two_process_ddp_matches_single_process(reference, ct_dir, tmp_path):
    _, reference_checkpoint = reference
    pairs = make_cases(ct_dir, tmp_path / "data")
    datasets = [
        {"key": "A", "cases": [list(p) for p in pairs], "label_map": {1: "spleen", 5: "liver"}},
        {
            "key": "B",
            "cases": [list(p) for p in pairs],
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
    raw["train"] = {**raw["train"], "accumulate": 1}
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
        "2",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    got = _state(tmp_path / "run" / "checkpoints" / "last.pth")
    expected = _state(reference_checkpoint)
    parameters = [
        k for k in expected if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    for key in parameters:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-7, msg=key)


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
