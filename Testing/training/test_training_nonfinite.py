"""Non-finite steps are skipped (weights untouched), counted, logged and saved; too many in a row stop."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_cases, make_config  # noqa: E402

from training import train as train_module  # noqa: E402
from training.nonfinite import NonFiniteGuard, NonFiniteTrainingError  # noqa: E402
from training.prepare import prepare  # noqa: E402
from training.train import Trainer  # noqa: E402

TINY = {"data": {"roi_size": 16}, "train": {"epochs": 1, "max_nonfinite_steps": 2}}  # 2 steps an epoch


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def _same(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(first[key], second[key]) for key in first)


def _step(model, optimizer, guard, loss_scale: float, step: int) -> bool:
    loss = model(torch.ones(1, 3)).sum() * loss_scale
    guard.note_loss(loss.item())
    loss.backward()
    skip = guard.should_skip(model.parameters(), epoch=0, step=step)
    if not skip:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return skip


def test_the_guard_skips_counts_and_stops_after_the_limit():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    guard = NonFiniteGuard(max_consecutive=3)
    initial = _weights(model)
    assert _step(model, optimizer, guard, float("nan"), 0)  # NaN loss: skipped
    assert _same(initial, _weights(model)) and not optimizer.state  # weights and Adam state untouched
    assert not _step(model, optimizer, guard, 1.0, 1)  # a finite step applies and resets the run
    assert not _same(initial, _weights(model)) and guard.consecutive == 0
    model.weight.register_hook(lambda grad: grad * float("inf"))  # finite loss, infinite gradient
    after_good_step = _weights(model)
    assert _step(model, optimizer, guard, 1.0, 2) and _step(model, optimizer, guard, 1.0, 3)
    assert (guard.total, guard.consecutive, guard.end_epoch(), guard.in_epoch) == (3, 2, 3, 0)
    message = r"3 optimizer step\(s\) in a row.*epoch 1, step 4.*train\.lr"
    with pytest.raises(NonFiniteTrainingError, match=message):
        _step(model, optimizer, guard, 1.0, 4)
    assert _same(after_good_step, _weights(model))
    restored = NonFiniteGuard(3)
    restored.load_state_dict(guard.state_dict())
    assert (restored.total, restored.consecutive) == (4, 3)


def test_a_skipped_step_restores_batch_norm_statistics():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = NonFiniteGuard(max_consecutive=5)
    initial = _weights(model)
    guard.begin_step(model)
    loss = model(torch.full((2, 3), float("nan"))).sum()  # a NaN forward pass poisons running_mean
    guard.note_loss(loss.item())
    loss.backward()
    assert torch.isnan(model[1].running_mean).all()
    assert guard.should_skip(model.parameters(), epoch=0, step=0)
    optimizer.zero_grad()
    assert _same(initial, _weights(model))


def test_a_guard_without_limit_only_skips():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    guard = NonFiniteGuard(max_consecutive=0)
    assert all(_step(model, optimizer, guard, float("inf"), step) for step in range(20))
    assert guard.total == 20


@pytest.fixture
def small_network(monkeypatch):
    """Train a 1-layer stand-in with batch norm instead of the 19M-parameter U-Net: the loop, loader, loss
    and guard are the real ones, at a fraction of the CPU time."""

    def build(config):
        torch.manual_seed(config.train.seed)
        layers = [
            torch.nn.Conv3d(1, config.num_classes, 3, padding=1),
            torch.nn.BatchNorm3d(config.num_classes),
        ]
        return torch.nn.Sequential(*layers), "random"

    monkeypatch.setattr(train_module, "build_training_model", build)


@pytest.fixture(scope="module")
def prepared(ct_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nonfinite")
    pairs = make_cases(ct_dir, folder / "data")
    dataset = {"key": "A", "cases": [list(p) for p in pairs], "label_map": {1: "spleen", 5: "liver"}}
    config = make_config(ct_dir, folder, extra={**TINY, "datasets": [dataset]})
    prepare(config, workers=1, show_progress=False)
    return config, folder


def _poison(trainer: Trainer, bad_calls: set[int] | None) -> list[tuple[bool, dict, int]]:
    """Make the loss NaN on the given batch numbers (1-based; None: all) and record every step."""
    loss_fn, optimizer_step, calls, steps = trainer.loss_fn, trainer._optimizer_step, [], []

    def loss(*args):
        value, parts = loss_fn(*args)
        calls.append(1)
        poisoned = bad_calls is None or len(calls) in bad_calls
        return (value * float("nan") if poisoned else value), parts

    def step():
        applied = optimizer_step()
        steps.append((applied, _weights(trainer.model), len(trainer.optimizer.state)))
        return applied

    trainer.loss_fn, trainer._optimizer_step = loss, step
    return steps


def test_training_skips_nan_steps_and_logs_and_saves_the_count(prepared, small_network, capsys):
    config, _ = prepared
    trainer = Trainer(config, show_progress=False)
    saved = {}
    trainer.save = lambda name: saved.setdefault(name, trainer.training_state())  # what save() writes
    initial = _weights(trainer.model)
    steps = _poison(trainer, {1})
    trainer.fit()
    assert [applied for applied, _, _ in steps] == [False, True]
    # Parameters, batch-norm running statistics and optimizer state are those before the NaN step.
    assert _same(initial, steps[0][1]) and steps[0][2] == 0
    assert not _same(initial, steps[1][1])
    assert all(torch.isfinite(value).all() for value in steps[-1][1].values() if value.is_floating_point())
    line = [text for text in capsys.readouterr().out.splitlines() if text.startswith("epoch 1/1")][0]
    assert line.endswith("skipped 1 non-finite steps") and "loss nan" not in line
    assert saved["final"]["nonfinite"] == {"total": 1, "in_epoch": 0, "consecutive": 0}


def test_training_stops_after_the_limit_of_consecutive_nan_steps(prepared, small_network):
    config, _ = prepared
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, max_nonfinite_steps=1))
    trainer = Trainer(config, show_progress=False)
    initial = _weights(trainer.model)
    steps = _poison(trainer, None)
    with pytest.raises(NonFiniteTrainingError, match=r"epoch 1, step 0, loss nan on rank 0.*grad_clip"):
        trainer.fit()
    assert not steps and _same(initial, _weights(trainer.model))  # the first bad step raised
