"""Partial-label loss: exact zero gradient for unannotated classes, Dice variants, and learning on a batch."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from training_helpers import make_config  # noqa: E402

from training.datasets import build_train_loader  # noqa: E402
from training.losses import PartialLabelLoss, soft_dice_loss  # noqa: E402
from training.prepare import prepare  # noqa: E402


def _reference_dice(p: np.ndarray, t: np.ndarray, per_slice: bool) -> float:
    if per_slice:
        values = [1 - 2 * (p[i] * t[i]).sum() / (p[i].sum() + t[i].sum() + 1) for i in range(p.shape[0])]
        return float(np.mean(values))
    return float(1 - 2 * (p * t).sum() / (p.sum() + t.sum() + 1))


def test_dice_loss_matches_the_formula_per_slice_and_per_volume():
    generator = torch.Generator().manual_seed(0)
    p = torch.rand(2, 4, 3, 5, generator=generator)
    t = (torch.rand(2, 4, 3, 5, generator=generator) > 0.6).float()
    for per_slice in (True, False):
        got = soft_dice_loss(p, t, per_slice=per_slice)
        expected = [_reference_dice(p[i].numpy(), t[i].numpy(), per_slice) for i in range(2)]
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5)
    assert not torch.allclose(soft_dice_loss(p, t, True), soft_dice_loss(p, t, False))


def test_unannotated_classes_get_exactly_zero_gradient():
    from UniversalSegLib.model import UniversalModel

    torch.manual_seed(0)
    model = UniversalModel("unet", num_classes=32, per_sample_norm=True)
    model.organ_embedding.requires_grad_(True)
    image = torch.randn(2, 1, 16, 16, 16)
    logits = model(image)
    logits.retain_grad()
    target = torch.full((2, 32, 16, 16, 16), 255, dtype=torch.uint8)
    annotated = torch.zeros(2, 32, dtype=torch.bool)
    annotated[0, [0, 5]] = True  # sample 0: spleen + liver
    annotated[1, [1, 2]] = True  # sample 1: both kidneys
    target[annotated] = (torch.rand(4, 16, 16, 16) > 0.7).to(torch.uint8)
    loss, parts = PartialLabelLoss()(logits, target, annotated)
    loss.backward()
    grad = logits.grad
    for b in range(2):
        for c in range(32):
            nonzero = bool(grad[b, c].abs().sum() > 0)
            assert nonzero == bool(annotated[b, c]), (b, c)
    rows = model.organ_embedding.grad.abs().sum(1)
    assert torch.all(rows[[0, 1, 2, 5]] > 0)
    untouched = [c for c in range(32) if c not in (0, 1, 2, 5)]
    assert torch.all(rows[untouched] == 0)
    assert parts["bce"] > 0 and 0 < parts["dice"] <= 1


def test_loss_goes_down_on_one_real_batch(ct_dir, tmp_path):
    from UniversalSegLib.model import UniversalModel

    config = make_config(ct_dir, tmp_path, roi=16, extra={"data": {"batch_size": 2}})
    prepare(config, workers=1, show_progress=False)
    loader, sampler = build_train_loader(config)
    sampler.set_epoch(0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 1, 16, 16, 16) and batch["target"].shape == (2, 32, 16, 16, 16)
    torch.manual_seed(0)
    model = UniversalModel("unet", per_sample_norm=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = PartialLabelLoss()
    losses = []
    for _ in range(6):
        loss, _ = loss_fn(model(batch["image"].as_tensor()), batch["target"].as_tensor(), batch["annotated"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses
