"""``benchmarks/cpu_stages.py`` (issue #13): the stand-in network's organ bands, and a whole one-window run of
two checkouts in child processes whose table has every stage, finite seconds and the ratio row."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "cpu_stages.py"


@pytest.fixture
def cpu_stages(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(SCRIPT.parent), *sys.path])
    spec = importlib.util.spec_from_file_location("cpu_stages_under_test", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_the_stand_in_network_gives_each_class_its_tissue_band(cpu_stages):
    bands = dict(cpu_stages.BANDS)
    window = torch.full((1, 1, 12, 12, 12), bands["fat"])
    window[..., 6:, :, :] = bands["liver"]  # half fat, half liver
    names = [name for name, _ in cpu_stages.BANDS]
    liver, fat, kidney = names.index("liver"), names.index("fat"), names.index("kidney")
    logits = cpu_stages.BandStandIn()(window, [liver, fat, kidney, liver + len(names)])
    assert logits.shape == (1, 4, 12, 12, 12)
    inside = logits > 0
    assert inside[0, 0, 9:].all() and not inside[0, 0, :4].any()  # liver where liver is, not in the fat
    assert inside[0, 1, :4].all() and not inside[0, 1, 9:].any()
    assert not inside[0, 2].any()  # no kidney intensity anywhere
    assert torch.equal(logits[0, 3], logits[0, 0])  # the bands repeat over the 32 classes


def _cells(line: str) -> list[str]:
    return [cell.strip(" *×") for cell in line.strip().strip("|").split("|")]


def test_the_table_puts_the_second_version_over_the_first(cpu_stages):
    mine = {stage: 1.0 for stage in (*cpu_stages.STAGES, "cpu side")}
    theirs = {stage: 2.5 for stage in mine}
    lines = cpu_stages.table({48: {"this checkout": mine, "--vs": theirs}}).splitlines()
    assert _cells(lines[0])[2:-1] == list(cpu_stages.STAGES)
    assert [_cells(line)[1] for line in lines[2:]] == ["this checkout", "--vs", "--vs ÷ this checkout"]
    assert _cells(lines[-1])[2:] == ["2.50"] * (len(cpu_stages.STAGES) + 1)


@pytest.mark.slow
def test_a_one_window_run_in_a_child_process_times_every_stage(cpu_stages, capsys):
    cpu_stages.main(["--windows", "1", "--runs", "1", "--rounds", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and _cells(lines[2])[:2] == ["1", "this checkout"]
    seconds = [float(cell) for cell in _cells(lines[2])[2:]]
    assert len(seconds) == len(cpu_stages.STAGES) + 1 and all(math.isfinite(s) and s >= 0 for s in seconds)
    stage = dict(zip(cpu_stages.STAGES, seconds, strict=False))
    assert stage["postprocess"] > 0 and stage["resample"] > 0 and stage["write"] > 0
    assert seconds[-1] == pytest.approx(sum(stage[name] for name in cpu_stages.CPU_SIDE), abs=0.03)
