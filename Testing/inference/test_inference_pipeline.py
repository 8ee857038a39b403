"""``segment`` end to end: class selection, progress, cancellation, OOM fallback, real model."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.inference import InferenceError, InferenceOptions, SegmentationCancelled, segment
from UniversalSegLib.inference.device import (
    Attempt,
    fallback_attempts,
    resolve_device,
    run_with_oom_fallback,
)
from UniversalSegLib.inference.sliding_window import count_windows
from UniversalSegLib.progress import ProgressEvent

from .conftest import ThresholdPredictor

FAST = InferenceOptions(roi_size=64, device="cpu")


@pytest.fixture
def small_ct(example_ct) -> sitk.Image:
    """A 40×30×12 voxel (3 mm) piece of the example CT around the liver and kidneys."""
    return example_ct[40:80, 30:60, 8:20]


def test_only_requested_classes_returned_but_requirements_computed(example_ct, threshold_predictor) -> None:
    result = segment(example_ct, threshold_predictor, [27, 10, 1], FAST)
    assert result.classes == [27, 10, 1]
    assert set(result.masks) == {27, 10, 1}
    # Liver (6) for the liver tumor and pancreas (11) for the vein are computed, as 0-based channels.
    assert all(channels == [0, 5, 9, 10, 26] for channels in threshold_predictor.calls)
    for mask in result.masks.values():
        assert mask.GetSize() == example_ct.GetSize() and mask.GetPixelID() == sitk.sitkUInt8
        assert set(np.unique(sitk.GetArrayViewFromImage(mask))) <= {0, 1}
    assert set(result.timings) >= {"preprocess", "inference", "postprocess", "resample", "total"}


def test_postprocess_off_computes_only_requested(small_ct, threshold_predictor) -> None:
    segment(small_ct, threshold_predictor, [27, 10], InferenceOptions(roi_size=32, postprocess=False))
    assert all(channels == [9, 26] for channels in threshold_predictor.calls)


def test_postprocessing_is_applied(example_ct) -> None:
    """Bright voxels (bone, contrast) form many components: class 1 keeps only the largest one."""
    predictor = ThresholdPredictor(threshold=0.9)
    raw = segment(example_ct, predictor, [1], InferenceOptions(roi_size=64, postprocess=False)).masks[1]
    kept = segment(example_ct, predictor, [1], FAST).masks[1]
    raw_array, kept_array = sitk.GetArrayViewFromImage(raw) > 0, sitk.GetArrayViewFromImage(kept) > 0
    assert kept_array.sum() < raw_array.sum() and not (kept_array & ~raw_array).any()


def test_progress_reports_windows(example_ct, threshold_predictor) -> None:
    events: list[ProgressEvent] = []
    segment(example_ct, threshold_predictor, [1], FAST, progress=events.append)
    windows = [e for e in events if e.stage == "inference"]
    total = windows[-1].total
    assert total == threshold_predictor.windows == count_windows((241, 191, 59), (64, 64, 64), 0.5)
    assert windows[-1].done == total and windows[0].done == 0
    stages = [e.stage for e in events]
    assert stages.index("preprocess") < stages.index("inference") < stages.index("resample")


def test_cancellation(small_ct) -> None:
    cancel = threading.Event()
    predictor = ThresholdPredictor()
    original = predictor.__call__

    def cancelling(x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        cancel.set()
        return original(x, channels)

    with pytest.raises(SegmentationCancelled):
        segment(small_ct, cancelling, [1], InferenceOptions(roi_size=16), cancel=cancel)
    assert predictor.windows == 1
    with pytest.raises(SegmentationCancelled):
        segment(small_ct, predictor, [1], FAST, cancel=cancel)  # already set: nothing runs
    assert predictor.windows == 1


class _OutOfMemoryOnce(ThresholdPredictor):
    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        if not self.calls:
            self.calls.append([])
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().__call__(x, channels)


def test_out_of_memory_retries_with_one_window(small_ct) -> None:
    predictor = _OutOfMemoryOnce()
    options = InferenceOptions(roi_size=16, sw_batch_size=4, device="cpu")
    result = segment(small_ct, predictor, [1], options)
    assert len(result.warnings) == 1 and "out of memory" in result.warnings[0]
    expected = segment(small_ct, ThresholdPredictor(), [1], InferenceOptions(roi_size=16)).masks[1]
    np.testing.assert_array_equal(sitk.GetArrayFromImage(result.masks[1]), sitk.GetArrayFromImage(expected))


def test_fallback_plan_and_runner() -> None:
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    plan = fallback_attempts(cuda, 4)
    assert plan == [Attempt(cuda, 4), Attempt(cuda, 1), Attempt(cpu, 1)]
    assert fallback_attempts(cpu, 1) == [Attempt(cpu, 1)]
    tried: list[Attempt] = []

    def run(attempt: Attempt) -> str:
        tried.append(attempt)
        if attempt.device.type == "cuda":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return "done on cpu"

    warnings: list[str] = []
    assert run_with_oom_fallback(run, plan, warnings) == "done on cpu"
    assert tried == plan and len(warnings) == 2 and "cpu" in warnings[-1]

    def other_error(attempt: Attempt) -> str:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_with_oom_fallback(other_error, plan)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_with_oom_fallback(run, [Attempt(cuda, 1)])


def test_device_choice() -> None:
    expected = "cuda" if torch.cuda.is_available() else None
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    if expected is None:
        assert resolve_device("auto").type != "cuda"
        with pytest.raises(InferenceError, match="CUDA"):
            resolve_device("cuda")


class _NormFlagModel(torch.nn.Module):
    """Stand-in module with the U-Net's ``per_sample_norm`` switch; records it during forward."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))
        self.per_sample_norm = False
        self.flags: list[bool] = []
        self.num_classes = 32

    def forward(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        self.flags.append(self.per_sample_norm)
        return (self.scale * (x - 0.5)).repeat(1, len(channels), 1, 1, 1)


def test_per_sample_norm_set_for_batched_windows(small_ct) -> None:
    model = _NormFlagModel().train()
    segment(small_ct, model, [1], InferenceOptions(roi_size=16, sw_batch_size=3, precision="bf16"))
    assert model.flags and all(model.flags)
    assert model.per_sample_norm is False and model.training  # restored
    with pytest.raises(InferenceError, match="out of range"):
        segment(small_ct, model, [33], FAST)


def test_bad_input(small_ct, threshold_predictor) -> None:
    with pytest.raises(InferenceError, match="3D"):
        segment(sitk.Image([20, 20], sitk.sitkInt16), threshold_predictor, [1])
    with pytest.raises(InferenceError, match="3D"):
        segment(sitk.Image([20, 20, 20, 2], sitk.sitkInt16), threshold_predictor, [1])
    with pytest.raises(InferenceError, match="no class"):
        segment(small_ct, threshold_predictor, [])
    with pytest.raises(InferenceError, match="indices"):
        segment(small_ct, threshold_predictor, ["liver"])
    with pytest.raises(InferenceError, match="blend"):
        InferenceOptions(blend="mean")


def test_real_unet_model_end_to_end(small_ct, tmp_path: Path) -> None:
    """Random-init U-Net checkpoint → load_model → segment; batched windows equal single windows."""
    pytest.importorskip("UniversalSegLib.model")
    from UniversalSegLib.testing import write_random_checkpoint
    from UniversalSegLib.weights.checkpoint import load_model

    torch.manual_seed(0)
    path = write_random_checkpoint(tmp_path / "unet.pth", backbone="unet", layout="official", seed=0)
    model = load_model(path or tmp_path / "unet.pth", device="cpu")
    tiny_ct = small_ct[10:30, 5:21, 2:10]  # 39×31×15 at 1.5 mm: 2 windows of 32³
    classes = [1, 6, 27]
    single = segment(tiny_ct, model, classes, InferenceOptions(roi_size=32))
    batched = segment(tiny_ct, model, classes, InferenceOptions(roi_size=32, sw_batch_size=2))
    assert set(single.masks) == set(classes)
    for index in classes:
        mask = single.masks[index]
        assert mask.GetSize() == tiny_ct.GetSize() and mask.GetOrigin() == tiny_ct.GetOrigin()
        np.testing.assert_array_equal(
            sitk.GetArrayFromImage(mask), sitk.GetArrayFromImage(batched.masks[index])
        )
