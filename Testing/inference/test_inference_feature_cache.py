"""The feature cache: a re-query runs only the class heads and gives a fresh run's masks bit for bit; stale,
corrupt or foreign entries are never used; eviction, concurrent writers and a full disk leave valid state."""

from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.inference import InferenceOptions, pipeline, segment
from UniversalSegLib.inference.feature_cache import (
    ENTRY_FILE,
    HEAD_FEATURES_FILE,
    PARTIAL_MARK,
    FeatureCache,
    FeatureKey,
    FeatureRecorder,
    entry_bytes,
)
from UniversalSegLib.model import UniversalModel

LIMIT = 10**9  # Testing/conftest.py sets a 0 GB default limit for every other test
OPTIONS = {"roi_size": 16, "overlap": 0.0, "threads": 1, "postprocess": False}


def tiny_ct(seed: int = 0, shape: tuple[int, int, int] = (8, 12, 12)) -> sitk.Image:
    """A 3 mm body-only CT: 4 windows of 16³ at 1.5 mm."""
    rng = np.random.default_rng(seed)
    array = rng.normal(40, 120, size=shape).astype(np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    return image


@pytest.fixture(scope="module")
def model() -> UniversalModel:
    torch.manual_seed(0)
    return UniversalModel("unet").eval()


class CountingModel:
    """Counts the backbone passes of ``model`` while the context is open."""

    def __init__(self, model: UniversalModel, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = model.image_features

        def counted(x: torch.Tensor):
            self.calls += 1
            return original(x)

        monkeypatch.setattr(model, "image_features", counted)


def masks_of(result) -> dict[int, np.ndarray]:
    return {index: sitk.GetArrayFromImage(mask) for index, mask in result.masks.items()}


def run(model, cache, classes, image=None, **options):
    return segment(
        image or tiny_ct(), model, classes, InferenceOptions(**{**OPTIONS, **options}), feature_cache=cache
    )


def test_requery_runs_only_the_heads_and_equals_a_fresh_run(model, tmp_path, monkeypatch, caplog) -> None:
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    first = run(model, cache, [6, 1])
    assert not first.reused_features and len(cache.entries()) == 1
    counter = CountingModel(model, monkeypatch)
    monkeypatch.setattr(pipeline, "preprocess", _no_preprocessing)  # the stored geometry replaces it
    events = []
    with caplog.at_level(logging.INFO):
        requery = segment(
            tiny_ct(),
            model,
            [11, 2],
            InferenceOptions(**OPTIONS),
            progress=events.append,
            feature_cache=cache,
        )
    assert requery.reused_features and counter.calls == 0  # no backbone pass at all
    assert "Reused image features of an earlier run (4 windows" in caplog.text
    assert any(e.stage == "features" and e.message.startswith("reused image features") for e in events)
    monkeypatch.undo()
    fresh = run(model, None, [11, 2])
    for index, mask in masks_of(fresh).items():
        assert mask.any()
        np.testing.assert_array_equal(masks_of(requery)[index], mask)  # bit for bit


def _no_preprocessing(*args, **kwargs):
    raise AssertionError("a re-query must not preprocess")


def test_an_entry_gone_after_the_first_lookup_means_a_fresh_run(model, tmp_path, monkeypatch) -> None:
    """Features found before preprocessing but missing when the window loop starts (removed meanwhile, or
    another attempt after running out of GPU memory): the run preprocesses then and is a fresh run."""
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    run(model, cache, [1])
    lookup, calls = FeatureCache.lookup, []

    def found_once(self, key):
        calls.append(key)
        return lookup(self, key) if len(calls) == 1 else None

    monkeypatch.setattr(FeatureCache, "lookup", found_once)
    again = run(model, cache, [6])
    monkeypatch.undo()
    assert len(calls) == 2 and not again.reused_features
    np.testing.assert_array_equal(masks_of(again)[6], masks_of(run(model, None, [6]))[6])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_16_bit_features_are_kept_bit_for_bit(tmp_path, dtype) -> None:
    """bf16/fp16 runs keep their features in their own dtype (bf16 as raw 16-bit patterns)."""
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    key = FeatureKey("v", "w", {"precision": str(dtype)})
    image, head = torch.randn(3, 256).to(dtype), torch.randn(3, 8, 4, 4, 4).to(dtype)
    recorder = cache.start_recording(key, 3, (8, 4, 4, 4), dtype)
    recorder.add(image[:2], head[:2])
    recorder.add(image[2:], head[2:])
    recorder.commit()
    stored = cache.lookup(key)
    replayed_image, replayed_head = stored.window_features(1, 3)
    assert replayed_head.dtype == dtype and replayed_image.dtype == dtype
    assert torch.equal(replayed_head, head[1:3]) and torch.equal(replayed_image, image[1:3])
    assert stored.head_features.nbytes == head.numel() * 2


def test_fp16_storage_halves_fp32_features(model, tmp_path) -> None:
    exact = FeatureCache(tmp_path / "exact", limit_bytes=LIMIT)
    half = FeatureCache(tmp_path / "half", limit_bytes=LIMIT, storage="fp16")
    run(model, exact, [1])
    run(model, half, [1])
    assert half.size() < 0.55 * exact.size()
    requery, fresh = run(model, half, [6]), run(model, None, [6])
    a, b = masks_of(requery)[6], masks_of(fresh)[6]
    assert requery.reused_features
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.99


def test_other_image_options_or_weights_miss(model, tmp_path) -> None:
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    run(model, cache, [1])
    assert not run(model, cache, [1], image=tiny_ct(seed=1)).reused_features
    assert not run(model, cache, [1], overlap=0.25).reused_features
    assert run(model, cache, [2], blend="constant").reused_features  # blending does not change features
    changed = UniversalModel("unet").eval()
    changed.load_state_dict(model.state_dict())
    with torch.no_grad():
        changed.precls_conv[2].bias.add_(0.01)
    assert not run(changed, cache, [1]).reused_features


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("truncate", "missing or truncated"),
        ("format", "another version of UniversalSeg"),
        ("torch", "other software versions: torch 0.0"),
        ("weights", "other weights"),
    ],
)
def test_bad_entries_are_never_used(model, tmp_path, caplog, damage, reason) -> None:
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    run(model, cache, [1])
    entry = cache.entries()[0]
    description = json.loads((entry / ENTRY_FILE).read_text())
    if damage == "truncate":
        path = entry / HEAD_FEATURES_FILE
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "format":
        description["format"] = 999
    elif damage == "torch":
        description["versions"]["torch"] = "0.0"
    else:
        description["weights"] = "0" * 40
    if damage != "truncate":
        (entry / ENTRY_FILE).write_text(json.dumps(description))
    with caplog.at_level(logging.WARNING):
        again = run(model, cache, [6])
    assert not again.reused_features
    assert "Not using the stored image features" in caplog.text and reason in caplog.text
    np.testing.assert_array_equal(masks_of(again)[6], masks_of(run(model, None, [6]))[6])
    assert run(model, cache, [2]).reused_features  # the fresh run stored a good entry again


def _key(name: str) -> FeatureKey:
    return FeatureKey(name, "w", {"roi_size": 2})


def _store(cache: FeatureCache, name: str) -> Path | None:
    recorder = cache.start_recording(_key(name), 2, (1, 2, 2, 2), torch.float32)
    if recorder is None:
        return None
    recorder.add(torch.zeros(2, 4), torch.full((2, 1, 2, 2, 2), 1.0))
    return recorder.commit()


def test_least_recently_used_entries_are_evicted(tmp_path) -> None:
    size = entry_bytes(2, (1, 2, 2, 2), torch.float32)
    cache = FeatureCache(tmp_path, limit_bytes=3 * size + 600)  # head + image features + description each
    first, second = _store(cache, "a"), _store(cache, "b")
    assert cache.lookup(_key("a")) is not None  # "a" is now the most recently used
    _store(cache, "c")
    assert first.exists() and not second.exists()
    assert (
        _store(FeatureCache(tmp_path, limit_bytes=size - 1), "d") is None
    )  # larger than the limit: not kept


def _write_same_entry(folder: str, start, results) -> None:
    cache = FeatureCache(Path(folder), limit_bytes=LIMIT)
    recorder = cache.start_recording(_key("same"), 2, (1, 2, 2, 2), torch.float32)
    start.wait()
    recorder.add(torch.zeros(2, 4), torch.ones(2, 1, 2, 2, 2))
    results.put(recorder.commit() is not None)


def test_concurrent_writers_leave_one_valid_entry(tmp_path) -> None:
    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    writers = [
        context.Process(target=_write_same_entry, args=(str(tmp_path), start, results)) for _ in range(2)
    ]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(60)
    assert sorted(results.get(timeout=5) for _ in writers) == [False, True]
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    assert [path.name for path in tmp_path.iterdir()] == [_key("same").digest]
    stored = cache.lookup(_key("same"))
    assert stored is not None and stored.window_features(0, 2)[1].sum() == 16


def test_a_writer_finds_room_while_another_commits_its_entry(tmp_path, monkeypatch) -> None:
    """What made the concurrent-writers test flaky (1 run in 25): the second writer's eviction listed the
    first writer's partial folder (its description already written) and sized it just as it was renamed
    into place; the FileNotFoundError made the second run keep no features. A partial folder is no entry,
    and a folder that vanishes while it is sized counts 0."""
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    committed = _store(cache, "kept")
    committing = tmp_path / f"{_key('other').digest}{PARTIAL_MARK}123-abcd"
    shutil.copytree(committed, committing)  # a partial folder whose description is written
    assert cache.entries() == [committed]

    real_rglob = Path.rglob

    def vanishing_rglob(self, pattern):
        if self == committed:
            shutil.rmtree(committed)  # renamed or evicted by the other process right now
        return real_rglob(self, pattern)

    monkeypatch.setattr(Path, "rglob", vanishing_rglob)
    recorder = cache.start_recording(_key("second"), 2, (1, 2, 2, 2), torch.float32)
    assert recorder is not None
    recorder.add(torch.zeros(2, 4), torch.ones(2, 1, 2, 2, 2))
    assert recorder.commit() is not None


def test_full_disk_keeps_the_run_and_leaves_no_partial_entry(model, tmp_path, monkeypatch, caplog) -> None:
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    written = []

    def write_until_full(recorder, array) -> None:
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(array.nbytes)

    monkeypatch.setattr(FeatureRecorder, "_write_head", write_until_full)
    with caplog.at_level(logging.WARNING):
        result = run(model, cache, [6])
    assert written and "No space left on device" in caplog.text
    np.testing.assert_array_equal(masks_of(result)[6], masks_of(run(model, None, [6]))[6])
    assert list(tmp_path.iterdir()) == []


def test_space_reservation_failure_keeps_nothing(model, tmp_path, monkeypatch, caplog) -> None:
    def no_space(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", no_space, raising=False)
    with caplog.at_level(logging.WARNING):
        assert not run(model, FeatureCache(tmp_path, limit_bytes=LIMIT), [1]).reused_features
    assert "Not keeping image features" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_no_room_on_disk_keeps_nothing(model, tmp_path, monkeypatch, caplog) -> None:
    cache = FeatureCache(tmp_path, limit_bytes=LIMIT)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with caplog.at_level(logging.WARNING):
        assert not run(model, cache, [1]).reused_features
    assert "Not keeping image features" in caplog.text and cache.entries() == []
    assert not any(PARTIAL_MARK in path.name for path in tmp_path.iterdir())
