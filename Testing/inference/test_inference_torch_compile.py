"""torch.compile of the image encoder: cached across processes, a fallback when it fails, CUDA only."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import SimpleITK as sitk  # noqa: N813
import torch

from UniversalSegLib.cli.run_request import COMPILE_AUTO_MIN_INPUTS, compile_wanted
from UniversalSegLib.inference.engines.torch_compile import (
    INDUCTOR_CACHE_ENV,
    CompiledImageFeatures,
    compiles_on,
)
from UniversalSegLib.inference.engines.torch_engine import TorchEngine, TorchSplitPredictor
from UniversalSegLib.inference.options import InferenceOptions
from UniversalSegLib.progress import ProgressReporter
from UniversalSegLib.testing import random_model


class TinyEncoder(torch.nn.Module):
    """Just enough of a model for the compile wrapper: ``image_features`` -> (image, head features)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, 8, 3, padding=1)

    def image_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(x))
        return features.mean(dim=(2, 3, 4)), features


@pytest.fixture
def inductor_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(INDUCTOR_CACHE_ENV, raising=False)  # the wrapper sets it: restored after the test
    return tmp_path


def failing_compile(function, **kwargs):
    def compiled(x):
        raise RuntimeError("backend compiler failed\nlong traceback")

    return compiled


def test_a_failed_compilation_runs_the_encoder_uncompiled_and_says_so(inductor_cache):
    model = TinyEncoder().eval()
    warnings: list[str] = []
    encoder = CompiledImageFeatures(model, warnings, compile_function=failing_compile)
    x = torch.randn(2, 1, 8, 8, 8)
    image, features = encoder(x)
    expected_image, expected_features = model.image_features(x)
    assert torch.equal(image, expected_image) and torch.equal(features, expected_features)
    assert not encoder.compiled
    assert len(warnings) == 1 and "RuntimeError: backend compiler failed" in warnings[0]
    assert "long traceback" not in warnings[0]
    encoder(x)  # later windows go straight to the uncompiled encoder, without a second warning
    assert len(warnings) == 1


def test_a_failed_compilation_reaches_the_result_warnings_once(inductor_cache, example_ct, monkeypatch):
    """Through ``segment``: the fallback's line is in ``SegmentationResult.warnings`` (what the CLI and
    Slicer show), once, and the masks are those of the uncompiled run."""
    from UniversalSegLib.inference import segment
    from UniversalSegLib.inference.engines import torch_engine

    model = random_model("unet", num_classes=32)
    ct = example_ct[50:70, 35:51, 10:14]  # one 32³ window at 1.5 mm
    options = InferenceOptions(roi_size=32, postprocess=False)
    expected = segment(ct, model, [1, 6], options)
    monkeypatch.setattr(torch_engine, "compiles_on", lambda options, device: True)
    monkeypatch.setattr(torch, "compile", failing_compile)
    result = segment(ct, model, [1, 6], dataclasses.replace(options, compile=True))
    assert [line for line in result.warnings if "torch.compile" in line] == [
        "torch.compile could not compile the image encoder (RuntimeError: backend compiler failed); "
        "running it uncompiled"
    ]
    for index in (1, 6):
        assert np.array_equal(
            sitk.GetArrayViewFromImage(result.masks[index]), sitk.GetArrayViewFromImage(expected.masks[index])
        )


def test_out_of_memory_is_not_taken_for_a_compiler_failure(inductor_cache):
    def out_of_memory_compile(function, **kwargs):
        def compiled(x):
            raise torch.OutOfMemoryError("CUDA out of memory")

        return compiled

    encoder = CompiledImageFeatures(TinyEncoder(), [], compile_function=out_of_memory_compile)
    with pytest.raises(torch.OutOfMemoryError):  # the device fallback (fewer windows per pass) handles it
        encoder(torch.randn(1, 1, 8, 8, 8))
    assert encoder.compiled


def test_the_compile_cache_goes_to_the_universalseg_home_unless_the_user_chose_one(
    inductor_cache, monkeypatch, tmp_path
):
    CompiledImageFeatures(TinyEncoder(), [], compile_function=failing_compile)
    assert os.environ[INDUCTOR_CACHE_ENV] == os.path.join(os.environ["UNIVERSALSEG_HOME"], "torch_compile")
    chosen = tmp_path / "mine"
    monkeypatch.setenv(INDUCTOR_CACHE_ENV, str(chosen))
    assert CompiledImageFeatures(TinyEncoder(), [], compile_function=failing_compile).cache_folder == str(
        chosen
    )


def test_compiling_is_for_cuda_only_and_the_engine_keeps_the_cpu_path():
    compiled = InferenceOptions(compile=True)
    assert compiles_on(compiled, torch.device("cuda:0"))
    assert not compiles_on(compiled, torch.device("cpu"))
    assert not compiles_on(InferenceOptions(), torch.device("cuda"))
    model = random_model("unet", num_classes=32)
    predictor = TorchEngine().predictor(
        model, compiled, torch.device("cpu"), "fp32", ProgressReporter(None), None
    )
    assert isinstance(predictor, TorchSplitPredictor)
    assert predictor.encoder == model.image_features  # not compiled on the CPU


def test_compile_auto_is_for_long_batches_outside_faithful():
    assert compile_wanted("auto", "balanced", COMPILE_AUTO_MIN_INPUTS)
    assert compile_wanted("auto", "fast", COMPILE_AUTO_MIN_INPUTS + 5)
    assert not compile_wanted("auto", "balanced", COMPILE_AUTO_MIN_INPUTS - 1)
    assert not compile_wanted("auto", "faithful", 1000)
    assert compile_wanted("on", "faithful", 1)
    assert not compile_wanted("off", "fast", 1000)
    with pytest.raises(Exception, match="compile must be True or False"):
        InferenceOptions(compile="yes")


def compile_once() -> dict:
    """Compile the tiny encoder through the engine's wrapper and run it; what happened, as JSON data."""
    from torch._dynamo.utils import counters

    counters.clear()
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    warnings: list[str] = []
    encoder = CompiledImageFeatures(model, warnings)
    x = torch.randn(1, 1, 8, 8, 8)
    with torch.inference_mode():
        image, features = encoder(x)
        expected = model.image_features(x)
    return {
        "compiled": encoder.compiled,
        "warnings": warnings,
        "close": all(
            torch.allclose(a, b, atol=1e-5) for a, b in zip((image, features), expected, strict=True)
        ),
        "inductor": dict(counters["inductor"]),
        "folder": encoder.cache_folder,
    }


IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from test_inference_torch_compile import compile_once
    print(json.dumps(compile_once()))
    """
)


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_encoder_instead_of_compiling_again(inductor_cache, tmp_path):
    """Two fresh processes alike (a compile in this test process would differ from them in settings that
    Inductor's cache key holds, such as the thread count)."""
    environment = dict(os.environ, UNIVERSALSEG_HOME=str(tmp_path / "home"), CUDA_VISIBLE_DEVICES="")
    environment.pop(INDUCTOR_CACHE_ENV, None)
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", IN_A_FRESH_PROCESS, os.path.dirname(__file__)],
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    for run in runs:
        assert run["compiled"] and run["close"] and not run["warnings"], run
        assert run["folder"] == str(tmp_path / "home" / "torch_compile")
    assert first["inductor"].get("fxgraph_cache_miss", 0) >= 1, first
    assert second["inductor"].get("fxgraph_cache_hit", 0) >= 1, second
    assert second["inductor"].get("fxgraph_cache_miss", 0) == 0, second


@pytest.mark.parametrize(
    ("arguments", "inputs", "expected"),
    [
        ([], 1, False),
        (["--compile", "on"], 1, True),
        (["--speed", "balanced"], COMPILE_AUTO_MIN_INPUTS, True),
        (["--speed", "balanced", "--compile", "off"], COMPILE_AUTO_MIN_INPUTS, False),
        ([], COMPILE_AUTO_MIN_INPUTS, False),  # faithful
    ],
)
def test_command_line_compile_choice_reaches_the_options(arguments, inputs, expected):
    from UniversalSegLib.cli.main import build_parser
    from UniversalSegLib.cli.run_request import options_from_args

    command = ["segment", "ct.nii.gz", "-o", "out.seg.nrrd", "--device", "cpu", *arguments]
    assert options_from_args(build_parser().parse_args(command), inputs).compile is expected


def test_feature_cache_key_records_a_compiled_encoder_on_cuda(tmp_path):
    from UniversalSegLib.inference.device import Attempt
    from UniversalSegLib.inference.feature_cache import FeatureCache
    from UniversalSegLib.inference.feature_session import FeatureSession

    def key_settings(device: str, compile: bool) -> dict:
        options = InferenceOptions(roi_size=32, compile=compile)
        session = FeatureSession(FeatureCache(tmp_path), None, options, 1, "volume", "w")
        return dict(session.key(Attempt(torch.device(device), 1), "torch", "fp32").settings)

    assert key_settings("cuda", True)["compiled"] is True
    assert key_settings("cuda", False)["compiled"] is False
    assert key_settings("cpu", True) == key_settings("cpu", False)  # the CPU never compiles
