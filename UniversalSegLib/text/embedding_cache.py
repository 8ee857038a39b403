"""On-disk cache of text embeddings keyed by (model, weights, template, name)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from torch import Tensor

from UniversalSegLib.io.atomic import atomic_output

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def default_cache_dir() -> Path:
    """``<home>/embeddings`` where home is ``$UNIVERSALSEG_HOME`` or the per-user data folder."""
    from UniversalSegLib.cache_paths import embeddings_folder

    return embeddings_folder()


def weights_identity(pretrained: str | os.PathLike | None) -> str:
    """A stable label of CLIP weights: the tag, or a local file's absolute path, size and mtime."""
    if pretrained is None:
        return "random-init"
    path = Path(pretrained).expanduser()
    if path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return str(pretrained)


class EmbeddingCache:
    """One ``.pt`` file per embedding, named by the sha256 of its key; writes are atomic.

    Args:
        directory: cache folder (default ``default_cache_dir()``).
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()

    @staticmethod
    def make_key(model_id: str, template: str, name: str) -> dict[str, str | int]:
        return {"version": CACHE_FORMAT_VERSION, "model": model_id, "template": template, "name": name}

    def path_for(self, model_id: str, template: str, name: str) -> Path:
        key = json.dumps(self.make_key(model_id, template, name), sort_keys=True)
        return self.directory / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}.pt"

    def get(self, model_id: str, template: str, name: str) -> Tensor | None:
        """The cached float32 embedding, or ``None`` (missing or unreadable entries count as misses)."""
        path = self.path_for(model_id, template, name)
        if not path.is_file():
            return None
        try:
            record = torch.load(path, map_location="cpu", weights_only=True)
            if record.get("key") != self.make_key(model_id, template, name):
                return None
            return record["embedding"].to(torch.float32)
        except Exception as error:  # a damaged entry is recomputed and replaced
            logger.warning("Ignoring unreadable embedding cache entry %s: %s", path, error)
            return None

    def put(self, model_id: str, template: str, name: str, embedding: Tensor) -> Path:
        """Store one embedding (1-D) and return its file."""
        if embedding.dim() != 1:
            raise ValueError(f"Cache one embedding vector at a time, got shape {tuple(embedding.shape)}")
        path = self.path_for(model_id, template, name)
        record = {
            "key": self.make_key(model_id, template, name),
            "embedding": embedding.detach().to("cpu", torch.float32).clone(),
        }
        with atomic_output(path, overwrite=True) as temporary:
            torch.save(record, temporary)
        return path

    def clear(self) -> int:
        """Delete all cached embeddings; returns how many files were removed."""
        removed = 0
        if self.directory.is_dir():
            for path in self.directory.glob("*.pt"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed += 1
        return removed
