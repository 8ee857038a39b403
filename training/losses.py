"""Partial-label loss (MODEL_SPEC §5): BCE-with-logits + soft Dice over annotated (sample, class) pairs.

Only pairs whose class the sample's dataset annotates enter the loss, so every other channel gets
exactly zero gradient from that sample. Both terms are averaged over the selected pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def soft_dice_loss(probabilities: torch.Tensor, target: torch.Tensor, per_slice: bool = True) -> torch.Tensor:
    """Dice loss per pair: ``1 - 2 sum(p t) / (sum p + sum t + 1)``.

    Args:
        probabilities: [P, X, Y, Z] sigmoid outputs of the selected pairs.
        target: [P, X, Y, Z] 0/1 targets.
        per_slice: Dice per first-axis slice, averaged over slices (the released models' variant);
            otherwise one Dice over the whole volume.

    Returns:
        [P] loss per pair.
    """
    dims = (2,) if per_slice else (1,)
    p = probabilities.flatten(2) if per_slice else probabilities.flatten(1)
    t = target.flatten(2) if per_slice else target.flatten(1)
    dice = 2 * (p * t).sum(dims) / (p.sum(dims) + t.sum(dims) + 1)
    loss = 1 - dice
    return loss.mean(1) if per_slice else loss


class PartialLabelLoss(torch.nn.Module):
    """BCE + Dice on the annotated channels only (weight 1:1, as official)."""

    def __init__(self, per_slice_dice: bool = True, bce_weight: float = 1.0, dice_weight: float = 1.0):
        super().__init__()
        self.per_slice_dice = per_slice_dice
        self.bce_weight = bce_weight
        self.dice_weight = dice_weight

    def forward(
        self, logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the loss.

        Args:
            logits: [B, C, X, Y, Z] raw model outputs.
            target: [B, C, X, Y, Z] targets (0/1 where annotated; anything elsewhere, e.g. 255).
            annotated: [B, C] bool, True where the sample's dataset annotates the class.

        Returns:
            (loss, {"bce": ..., "dice": ...}). A batch with no annotated pair gives a zero loss that
            still depends on ``logits`` (so DDP sees every parameter).
        """
        if logits.shape != target.shape or annotated.shape != logits.shape[:2]:
            raise ValueError(
                f"Shapes disagree: logits {tuple(logits.shape)}, target {tuple(target.shape)}, "
                f"annotated {tuple(annotated.shape)}."
            )
        batch_index, class_index = torch.nonzero(annotated.bool(), as_tuple=True)
        if batch_index.numel() == 0:
            zero = logits.sum() * 0.0
            return zero, {"bce": 0.0, "dice": 0.0}
        selected = logits[batch_index, class_index].float()
        truth = target[batch_index, class_index].float()
        bce = F.binary_cross_entropy_with_logits(selected, truth, reduction="none").flatten(1).mean(1)
        dice = soft_dice_loss(torch.sigmoid(selected), truth, per_slice=self.per_slice_dice)
        loss = self.bce_weight * bce.mean() + self.dice_weight * dice.mean()
        return loss, {"bce": float(bce.mean().detach()), "dice": float(dice.mean().detach())}
