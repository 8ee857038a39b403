"""A batch on two CPU ranks (gloo), with the environment torchrun gives each rank (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

The ranks are two fresh interpreters (``python -m UniversalSegLib``), as under torchrun; most of the test's
time is their import of torch and MONAI. (Forking the test process instead can hang: its OpenMP pool does
not survive a fork.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

TINY_RUN = [
    "--roi-size",
    "16",
    "--classes",
    "liver",
    "--no-postprocess",
    "--device",
    "auto",
    "--progress",
    "none",
]


def write_tiny_ct(path: Path, seed: int) -> None:
    array = np.random.default_rng(seed).normal(40.0, 60.0, (6, 8, 8)).astype(np.int16)
    array[0, 0, :] = -1000
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    sitk.WriteImage(image, str(path))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_ranks(processes: list[subprocess.Popen], tmp_path: Path, limit: float = 240.0) -> None:
    """Wait for every rank; fail at once with the logs when one exits and another keeps waiting for it."""
    deadline = time.monotonic() + limit
    first_exit = None
    while any(process.poll() is None for process in processes):
        now = time.monotonic()
        if first_exit is None and any(process.poll() is not None for process in processes):
            first_exit = now
        lonely = first_exit is not None and now - first_exit > 30.0  # the others wait for it forever
        if now > deadline or lonely:
            logs = [(tmp_path / f"rank{rank}.log").read_text() for rank in range(len(processes))]
            reason = (
                "a rank exited and the others did not follow" if lonely else f"not finished in {limit:.0f} s"
            )
            pytest.fail(f"{reason}; logs:\n" + "\n---\n".join(logs))
        time.sleep(0.2)


@pytest.mark.slow
def test_two_ranks_share_a_batch_and_agree_on_the_summary(unet_checkpoint, tmp_path):
    cts = tmp_path / "cts"
    cts.mkdir()
    names = ["a.nii.gz", "b.nrrd", "c.mha"]
    for seed, name in enumerate(names):
        write_tiny_ct(cts / name, seed)
    (cts / "d_broken.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "UniversalSegLib", "segment", str(cts), "-o", str(out)]
    command += ["--weights", str(unet_checkpoint), *TINY_RUN]
    port = str(free_port())
    processes = []
    for rank in range(2):
        environment = dict(os.environ, RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank))
        environment.update(
            MASTER_ADDR="127.0.0.1", MASTER_PORT=port, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES=""
        )
        log = (tmp_path / f"rank{rank}.log").open("w")  # files, not pipes: nothing can block on a full pipe
        processes.append(subprocess.Popen(command, env=environment, stdout=log, stderr=subprocess.STDOUT))
    try:
        wait_for_ranks(processes, tmp_path)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    results = [
        (process.returncode, (tmp_path / f"rank{rank}.log").read_text())
        for rank, process in enumerate(processes)
    ]
    assert [code for code, _ in results] == [6, 6], results  # one input failed: every rank says so
    assert "Batch of 4 inputs on 2 ranks: 3 done, 0 skipped, 1 failed" in results[0][1], results[0][1]
    assert "Rank 1: 1 done, 0 skipped, 1 failed" in results[1][1], results[1][1]
    outputs = sorted(path.name for path in out.glob("*.seg.nrrd"))
    assert outputs == ["a.seg.nrrd", "b.seg.nrrd", "c.seg.nrrd"]
    by_rank = {}
    for rank in range(2):
        lines = (out / f"universalseg-manifest.rank{rank}.jsonl").read_text().splitlines()
        by_rank[rank] = sorted(
            (Path(entry["input"]).name, entry["status"]) for entry in map(json.loads, lines)
        )
    # Sorted inputs a, b, c, d: rank 0 takes a and c, rank 1 b and d_broken.
    assert by_rank == {
        0: [("a.nii.gz", "ok"), ("c.mha", "ok")],
        1: [("b.nrrd", "ok"), ("d_broken.nii.gz", "failed")],
    }
