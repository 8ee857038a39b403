"""Datasets and samplers over prepared cases.

Every random choice is a pure function of (seed, epoch, item): the sampler yields ``(epoch, index)``
and the dataset re-seeds its random transforms from it. So the data stream does not depend on the
number of loader workers, on resuming, or (with the distributed sampler) on the number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, list_data_collate
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Sampler

from . import command
from .case_cache import case_jobs, case_status
from .config import DatasetSpec, TrainingConfig
from .errors import ConfigError
from .transforms import train_transforms


class MissingPreparedDataError(ConfigError):
    """A case has not been prepared yet, or its input files changed since."""


def prepared_items(config: TrainingConfig, spec: DatasetSpec, validation: bool = False) -> list[dict]:
    """Data dicts (``path``, ``classes``, ``dataset``, ``case_id``) of one dataset's prepared cases.

    Raises:
        MissingPreparedDataError: some cases are not prepared or stale (run the ``prepare`` tool).
    """
    jobs = case_jobs(config, spec, validation)
    missing = [
        (job, status) for job in jobs if (status := case_status(job, hash_changed=False)).kind != "current"
    ]
    if missing:
        job, status = missing[0]
        raise MissingPreparedDataError(
            f"{len(missing)} case(s) of dataset {spec.key!r} are not prepared or out of date (first: "
            f"{job.image}: {status.reason}); run: {command('prepare')} {config.source or 'CONFIG'}"
        )
    return [
        {
            "path": str(Path(job.output).with_suffix(".npz")),
            "classes": spec.classes,
            "dataset": spec.key,
            "case_id": job.case_id,
        }
        for job in jobs
    ]


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class EpochSeededDataset(Dataset):
    """Wraps a MONAI CacheDataset; ``dataset[(epoch, index)]`` re-seeds the random transforms first."""

    def __init__(self, dataset: CacheDataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int):
        epoch, index = key if isinstance(key, tuple) else (0, key)
        self.dataset.transform.set_random_state(seed=_item_seed(self.seed, epoch, index))
        return self.dataset[index]


class TaggedConcatDataset(ConcatDataset):
    """A ConcatDataset whose items are addressed by ``(epoch, global index)``."""

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        part = int(np.searchsorted(self.cumulative_sizes, index, side="right"))
        local = index - (self.cumulative_sizes[part - 1] if part else 0)
        return self.datasets[part][(epoch, local)]


class UniformDatasetSampler(Sampler[int]):
    """Item i of an epoch takes sampling group ``i % n_groups`` and a random case of it (``uniform_sample``).

    A group is one dataset, or several that share a ``sampling_group`` (BTCV's two list files are one
    group, as the official ``get_key`` sees them): a case is then drawn uniformly from all their cases.

    Args:
        sizes: number of cases of each dataset, in the order of the concatenated dataset.
        num_replicas, rank: this process's share (item i goes to rank ``i % num_replicas``).
        seed: seed of the per-epoch draws.
        groups: sampling group of each dataset (default: each dataset is its own group).
    """

    def __init__(
        self,
        sizes: list[int],
        num_replicas: int = 1,
        rank: int = 0,
        seed: int = 0,
        groups: list[str] | None = None,
    ) -> None:
        self.sizes, self.num_replicas, self.rank, self.seed = sizes, num_replicas, rank, seed
        self.epoch = 0
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        names = groups if groups is not None else [str(i) for i in range(len(sizes))]
        if len(names) != len(sizes):
            raise ValueError(f"{len(names)} sampling groups for {len(sizes)} datasets")
        members: dict[str, list[int]] = {}
        for part, name in enumerate(names):
            members.setdefault(name, []).extend(range(offsets[part], offsets[part] + sizes[part]))
        self.groups = list(names)
        self.group_items = [np.asarray(items, dtype=np.int64) for items in members.values()]
        self.num_samples = math.ceil(sum(sizes) / num_replicas)

    def dataset_shares(self) -> list[float]:
        """Expected fraction of the drawn items that comes from each dataset: its group's ``1/n_groups``,
        split between the group's datasets in proportion to their cases."""
        group_sizes: dict[str, int] = {}
        for name, size in zip(self.groups, self.sizes, strict=True):
            group_sizes[name] = group_sizes.get(name, 0) + size
        return [
            size / group_sizes[name] / len(group_sizes)
            for name, size in zip(self.groups, self.sizes, strict=True)
        ]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        total = self.num_samples * self.num_replicas
        picks = []
        for i in range(total):
            items = self.group_items[i % len(self.group_items)]
            picks.append(int(items[int(torch.randint(len(items), (1,), generator=generator))]))
        return iter(picks[self.rank : total : self.num_replicas])


def uniform_sampler(
    config: TrainingConfig, sizes: dict[str, int], num_replicas: int = 1, rank: int = 0
) -> UniformDatasetSampler:
    """The ``uniform_sample`` sampler over the datasets that have cases, grouped by ``sampling_group``.

    Args:
        sizes: dataset key -> number of training cases (datasets without cases are left out, in the
            same order as the training loader's concatenated dataset).
    """
    specs = [spec for spec in config.datasets if sizes.get(spec.key)]
    return UniformDatasetSampler(
        [sizes[spec.key] for spec in specs],
        num_replicas,
        rank,
        config.train.seed,
        groups=[spec.sampling_group for spec in specs],
    )


class EpochTaggedSampler(Sampler):
    """Yields ``(epoch, index)`` from a per-epoch sampler, optionally skipping the first items (resume)."""

    def __init__(self, base: DistributedSampler | UniformDatasetSampler) -> None:
        self.base = base
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base) - self.skip

    def __iter__(self):
        for position, index in enumerate(self.base):
            if position >= self.skip:
                yield (self.epoch, int(index))


def build_train_loader(
    config: TrainingConfig, rank: int = 0, world_size: int = 1
) -> tuple[DataLoader, EpochTaggedSampler]:
    """The training loader: per-dataset CacheDatasets, distributed (or uniform) sampling, crop collation."""
    parts, sizes = [], {}
    for spec in config.datasets:
        items = prepared_items(config, spec)
        if not items:
            continue
        sizes[spec.key] = len(items)
        cache = CacheDataset(
            items,
            transform=train_transforms(config.data, spec),
            cache_rate=config.data.cache_rate,
            num_workers=max(config.data.num_workers, 1),
            progress=False,
        )
        parts.append(EpochSeededDataset(cache, config.train.seed))
    if not parts:
        raise MissingPreparedDataError("No training cases: every dataset's case list is empty.")
    dataset = TaggedConcatDataset(parts)
    if config.data.uniform_sample:
        base = uniform_sampler(config, sizes, world_size, rank)
    else:
        base = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=config.train.seed
        )
    sampler = EpochTaggedSampler(base)
    loader = DataLoader(
        dataset,
        batch_size=config.data.batch_size,
        sampler=sampler,
        num_workers=config.data.num_workers,
        collate_fn=list_data_collate,
        pin_memory=torch.cuda.is_available(),
    )
    return loader, sampler
