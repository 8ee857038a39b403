"""Learning-rate schedule: linear warm-up then cosine annealing, stepped once per epoch (MODEL_SPEC §5).

With base lr L, warm-up W and E epochs (start and end lr 0), epoch e (0-based) uses
``L*(e+1)/(W-1)`` for ``e < W-1``, ``L`` at ``e = W-1``, then ``0.5*L*(1+cos(pi*(e+1-W)/(E-W)))``.
This is what the official ``LinearWarmupCosineAnnealingLR`` gives when stepped before each epoch.
"""

from __future__ import annotations

import math

import torch


def lr_factor(epoch: int, warmup_epochs: int, max_epochs: int) -> float:
    """Multiplier of the base lr for a 0-based ``epoch``."""
    step = epoch + 1  # the official scheduler is stepped once before the first epoch
    if warmup_epochs > 1 and step < warmup_epochs:
        return step / (warmup_epochs - 1)
    if step == warmup_epochs or max_epochs <= warmup_epochs:
        return 1.0 if step <= max_epochs else 0.0
    progress = min(step - warmup_epochs, max_epochs - warmup_epochs) / (max_epochs - warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_epochs: int, max_epochs: int):
    """A ``LambdaLR`` giving :func:`lr_factor` for the current epoch (call ``step()`` after each epoch)."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_factor(e, warmup_epochs, max_epochs))
