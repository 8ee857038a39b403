"""Seeding and ``train.deterministic``: PyTorch's deterministic algorithms for bit-exact reruns and resumes.

Deterministic mode sets ``torch.use_deterministic_algorithms(True)`` (an operation without a
deterministic implementation raises instead of warning), ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (needed by
cuBLAS on CUDA >= 10.2; set before the first matrix product), cuDNN ``deterministic`` on and ``benchmark``
off. The networks' global average pooling (``AdaptiveAvgPool3d(1)``, whose CUDA backward has no
deterministic implementation) becomes the equivalent mean over the spatial axes. On the CPU it also
makes Swin UNETR's relative-position-bias gradient (an accumulating index write, summed in thread order
otherwise) independent of thread scheduling, so no single-thread setting is needed.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's (CPU and every CUDA device) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def enable_deterministic_algorithms() -> None:
    """Make PyTorch use deterministic algorithms only, on every device (process-wide, not undone)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


class SpatialMean(torch.nn.Module):
    """Global average pooling of ``[B, C, X, Y, Z]`` to ``[B, C, 1, 1, 1]`` as a mean (deterministic)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


def deterministic_pooling(model: torch.nn.Module) -> int:
    """Replace every ``AdaptiveAvgPool3d(1)`` of ``model`` by :class:`SpatialMean`; the number replaced.

    The two compute the same average (no parameters, so checkpoints are unchanged); only the mean's
    CUDA backward is deterministic.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            size = getattr(child, "output_size", None)
            if isinstance(child, torch.nn.AdaptiveAvgPool3d) and size in (1, (1, 1, 1)):
                setattr(parent, name, SpatialMean())
                replaced += 1
    return replaced
