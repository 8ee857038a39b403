"""Read the official ``txt_encoding.pth`` CLIP embeddings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

OFFICIAL_EMBEDDING_DIM = 512


def load_official_embeddings(path: str | os.PathLike) -> Tensor:
    """Load ``txt_encoding.pth`` (fp16 [32, 512], saved from CUDA) or its ``.npy`` copy as float32 on the CPU.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file does not hold a 2-D ``[N, 512]`` tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Embedding file not found: {path}")
    if path.suffix.lower() == ".npy":
        value = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        value = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(value, dict):
        tensors = [v for v in value.values() if isinstance(v, Tensor)]
        value = tensors[0] if len(tensors) == 1 else value
    if not isinstance(value, Tensor) or value.dim() != 2 or value.shape[1] != OFFICIAL_EMBEDDING_DIM:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(
            f"{path} should hold a [N, {OFFICIAL_EMBEDDING_DIM}] tensor of text embeddings, got {shape}"
        )
    return value.to(torch.float32).contiguous()
