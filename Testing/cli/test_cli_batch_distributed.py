"""A batch on two CPU ranks (gloo), with the environment torchrun gives each rank (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT).

The ranks are forked from the test process, which has torch and MONAI imported already: two fresh
interpreters would spend most of the test importing them (about 4 s each on 2 cores).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import sys
from pathlib import Path

import numpy as np
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


def run_rank(rank: int, environment: dict[str, str], argv: list[str], log: Path) -> None:
    """One rank: the command line in-process, its stderr into ``log``, its exit code as the process's."""
    os.environ.update(environment, RANK=str(rank), LOCAL_RANK=str(rank), CUDA_VISIBLE_DEVICES="")
    with log.open("w") as stream:
        sys.stderr = stream
        from UniversalSegLib.cli.main import main

        code = main(argv)
        stream.flush()
    os._exit(code)


def test_two_ranks_share_a_batch_and_agree_on_the_summary(unet_checkpoint, tmp_path):
    cts = tmp_path / "cts"
    cts.mkdir()
    names = ["a.nii.gz", "b.nrrd", "c.mha", "d.nii.gz"]
    for seed, name in enumerate(names):
        write_tiny_ct(cts / name, seed)
    (cts / "e_broken.nii.gz").write_bytes(b"not an image")
    out = tmp_path / "out"
    argv = ["segment", str(cts), "-o", str(out), "--weights", str(unet_checkpoint), *TINY_RUN]
    environment = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=run_rank, args=(rank, environment, argv, tmp_path / f"rank{rank}.log"))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join(timeout=240)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
    results = [
        (process.exitcode, (tmp_path / f"rank{rank}.log").read_text())
        for rank, process in enumerate(processes)
    ]
    assert [code for code, _ in results] == [6, 6], results  # one input failed: every rank says so
    assert "Batch of 5 inputs on 2 ranks: 4 done, 0 skipped, 1 failed" in results[0][1], results[0][1]
    assert "Rank 1: 2 done, 0 skipped, 0 failed" in results[1][1], results[1][1]
    outputs = sorted(path.name for path in out.glob("*.seg.nrrd"))
    assert outputs == ["a.seg.nrrd", "b.seg.nrrd", "c.seg.nrrd", "d.seg.nrrd"]
    by_rank = {}
    for rank in range(2):
        lines = (out / f"universalseg-manifest.rank{rank}.jsonl").read_text().splitlines()
        by_rank[rank] = sorted(
            (Path(entry["input"]).name, entry["status"]) for entry in map(json.loads, lines)
        )
    # Sorted inputs a, b, c, d, e: rank 0 takes a, c, e_broken; rank 1 takes b, d.
    assert by_rank == {
        0: [("a.nii.gz", "ok"), ("c.mha", "ok"), ("e_broken.nii.gz", "failed")],
        1: [("b.nrrd", "ok"), ("d.nii.gz", "ok")],
    }
