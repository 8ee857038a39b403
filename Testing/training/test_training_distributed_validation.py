"""Validation split over processes: the sharding and the per-class means (the 2-process run itself is
checked in ``test_training_resume_ddp.py``)."""

from __future__ import annotations

import pytest

from training.distributed import DistInfo, gather_objects, means_across, shard_indices
from training.evaluate import mean_dice_per_class


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8, 294])
def test_every_case_goes_to_exactly_one_process_in_balanced_shares(count, world_size):
    shards = [list(shard_indices(count, rank, world_size)) for rank in range(world_size)]
    flat = [index for shard in shards for index in shard]
    assert sorted(flat) == list(range(count)) and len(set(flat)) == count
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    assert shards == [list(shard_indices(count, rank, world_size)) for rank in range(world_size)]


def test_a_rank_outside_the_job_is_an_error():
    with pytest.raises(ValueError):
        shard_indices(5, 2, 2)


def test_single_process_helpers_pass_values_through():
    alone = DistInfo()
    assert gather_objects({"a": 1}, alone) == [{"a": 1}]
    assert means_across([1.5, 2.0], alone) == [1.5, 2.0]


def test_mean_dice_per_class_averages_each_class_over_its_cases():
    rows = [
        {"class_key": "liver", "dice": 0.5},
        {"class_key": "spleen", "dice": 1.0},
        {"class_key": "liver", "dice": 0.75},
    ]
    assert mean_dice_per_class(rows) == {"liver": 0.625, "spleen": 1.0}
