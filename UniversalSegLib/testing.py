"""Helpers for tests: checkpoints from random initialisation (no downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from UniversalSegLib.model import UniversalModel

CHECKPOINT_LAYOUTS: tuple[str, ...] = ("official", "bare", "universalseg")


def random_model(
    backbone: str = "unet", seed: int = 0, num_classes: int = 32, encoding: str = "word_embedding"
) -> UniversalModel:
    """A randomly initialised model; the global RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = UniversalModel(backbone, num_classes=num_classes, encoding=encoding)
        # Non-trivial norm affine parameters and stats, so that a wrong mapping cannot pass unnoticed.
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if tensor.is_floating_point() and name.rsplit(".", 1)[-1] in (
                    "weight",
                    "bias",
                    "running_mean",
                ):
                    if tensor.dim() == 1:
                        tensor.add_(0.1 * torch.randn_like(tensor))
                elif name.endswith("running_var"):
                    tensor.mul_(torch.rand_like(tensor) + 0.5)
    return model.eval()


def write_random_checkpoint(
    path: str | os.PathLike[str],
    backbone: str = "unet",
    layout: str = "official",
    seed: int = 0,
    num_classes: int = 32,
) -> Path:
    """Write a checkpoint of a randomly initialised model and return its path.

    Args:
        path: output file (replaced if it exists: test use only).
        backbone: ``"unet"`` or ``"swinunetr"``.
        layout: ``"official"`` (released layout: ``{'net': {'module.…'}}`` plus optimizer/epoch entries),
            ``"bare"`` (our keys, no wrapper) or ``"universalseg"`` (our format with metadata).
        seed: random seed of the weights.
        num_classes: number of classes.
    """
    from UniversalSegLib.weights.checkpoint import export_official, save_checkpoint

    if layout not in CHECKPOINT_LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(CHECKPOINT_LAYOUTS)}")
    path = Path(path)
    model = random_model(backbone, seed=seed, num_classes=num_classes)
    if layout == "universalseg":
        return save_checkpoint(model, path, overwrite=True, embedding_source=f"random (seed {seed})")
    if layout == "bare":
        torch.save(model.state_dict(), path)
        return path
    export_official(model, path, overwrite=True)
    released = torch.load(path, map_location="cpu", weights_only=True)
    released.update({"optimizer": {"state": {}, "param_groups": []}, "scheduler": {}, "epoch": 0})
    torch.save(released, path)
    return path
