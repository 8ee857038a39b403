"""TF32 on CUDA: set for the run only (the official behaviour by default, strict fp32 on request), restored
afterwards, recorded in the feature cache's key, and reachable from the command line."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.cli.main import build_parser
from UniversalSegLib.cli.run_request import options_from_args
from UniversalSegLib.inference import InferenceError, InferenceOptions, segment
from UniversalSegLib.inference.device import Attempt
from UniversalSegLib.inference.feature_cache import FeatureCache
from UniversalSegLib.inference.feature_session import FeatureSession
from UniversalSegLib.inference.tf32 import tf32_mode, tf32_state
from UniversalSegLib.progress import ProgressReporter


def _flags() -> tuple[bool, bool]:
    return torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32


class FlagRecorder:
    """A predictor that notes the process's TF32 flags at each window (and can fail on the first)."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: set[tuple[bool, bool]] = set()
        self.fail = fail

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor:
        self.seen.add(_flags())
        if self.fail:
            raise RuntimeError("predictor failed")
        return (x - 0.5).repeat(1, len(channels or [0]), 1, 1, 1)


@pytest.fixture
def small_ct() -> sitk.Image:
    array = np.full((10, 20, 20), 100, dtype=np.int16)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((3.0, 3.0, 3.0))
    return image


@pytest.fixture
def restore_flags():
    before = _flags()
    yield before
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _run(image: sitk.Image, predictor: FlagRecorder, tf32: bool | None) -> None:
    options = InferenceOptions(device="cpu", roi_size=32, postprocess=False, tf32=tf32)
    segment(image, predictor, [1], options)


@pytest.mark.parametrize("tf32", [True, False])
def test_flags_hold_during_the_run_and_come_back_after(small_ct, restore_flags, tf32) -> None:
    for before in [(not tf32, not tf32), (True, False)]:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
        predictor = FlagRecorder()
        _run(small_ct, predictor, tf32)
        assert predictor.seen == {(tf32, tf32)}
        assert _flags() == before


def test_none_leaves_the_flags_alone_and_an_error_restores_them(small_ct, restore_flags) -> None:
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = True, False
    predictor = FlagRecorder()
    _run(small_ct, predictor, None)
    assert predictor.seen == {(True, False)}

    failing = FlagRecorder(fail=True)
    with pytest.raises(RuntimeError, match="predictor failed"):
        _run(small_ct, failing, False)
    assert failing.seen == {(False, False)} and _flags() == (True, False)


def test_default_is_the_official_tf32_and_bad_values_are_refused() -> None:
    assert InferenceOptions().tf32 is True
    with pytest.raises(InferenceError, match="tf32"):
        InferenceOptions(tf32="no")


@pytest.mark.skipif(not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="PyTorch < 2.9")
def test_settings_made_with_the_newer_interface_come_back(restore_flags) -> None:
    matmul, convolutions = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = (matmul.fp32_precision, convolutions.fp32_precision)
    matmul.fp32_precision = "tf32"  # reading allow_tf32 now raises (mixed interfaces)
    try:
        with tf32_mode(False):
            assert tf32_state() == "off"
        assert (matmul.fp32_precision, convolutions.fp32_precision) == ("tf32", before[1])
    finally:
        matmul.fp32_precision, convolutions.fp32_precision = before


def _settings(tmp_path, device: str, tf32: bool) -> dict:
    session = FeatureSession(FeatureCache(tmp_path), None, InferenceOptions(roi_size=32), 1, "volume", "w")
    with tf32_mode(tf32):
        source = session.source(Attempt(torch.device(device), 1), "torch", "fp32", ProgressReporter(None))
    return dict(source.key.settings)


def test_feature_cache_key_records_tf32_on_cuda_only(tmp_path, restore_flags) -> None:
    on, off = _settings(tmp_path, "cuda", True), _settings(tmp_path, "cuda", False)
    assert (on["tf32"], off["tf32"]) == ("conv+matmul", "off")
    assert _settings(tmp_path, "cpu", True) == _settings(tmp_path, "cpu", False)  # same CPU features
    assert _settings(tmp_path, "cpu", True)["tf32"] is None


@pytest.mark.parametrize(("arguments", "expected"), [([], True), (["--strict-fp32"], False)])
def test_command_line_switch_reaches_the_options(arguments, expected) -> None:
    command = ["segment", "ct.nii.gz", "-o", "out.seg.nrrd", "--device", "cpu", *arguments]
    args = build_parser().parse_args(command)
    assert options_from_args(args).tf32 is expected
