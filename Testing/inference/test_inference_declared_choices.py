"""Model names, devices and speed modes are declared once (``UniversalSegLib.run_choices``); the model, the
options, the speed presets, the command line, the panel's choices and the weights catalog (data) agree."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from UniversalSegLib import run_choices
from UniversalSegLib.cli.main import build_parser
from UniversalSegLib.inference import options, speed
from UniversalSegLib.model import BACKBONES

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOG = REPO_ROOT / "UniversalSegLib" / "resources" / "weights_catalog.json"
PANEL_CHOICES = REPO_ROOT / "UniversalSeg" / "UniversalSegGui" / "choices.py"


def test_the_declaration_needs_only_the_standard_library() -> None:
    tree = ast.parse(Path(run_choices.__file__).read_text(encoding="utf-8"))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_weights_catalog_lists_the_declared_models() -> None:
    catalog = json.loads(CATALOG.read_text(encoding="utf-8"))
    models = {name: item for name, item in catalog["items"].items() if item["kind"] == "model"}
    assert tuple(models) == run_choices.MODEL_NAMES
    assert all(item["backbone"] == name for name, item in models.items())
    assert catalog["default_model"] == run_choices.DEFAULT_MODEL


def test_library_uses_the_declaration() -> None:
    assert BACKBONES == run_choices.MODEL_NAMES
    assert options.DEVICES == run_choices.DEVICES
    assert options.InferenceOptions().device == run_choices.DEFAULT_DEVICE
    assert (speed.SPEED_MODES, speed.DEFAULT_SPEED) == (run_choices.SPEED_MODES, run_choices.DEFAULT_SPEED)
    for mode in run_choices.SPEED_MODES:
        speed.speed_preset(mode, "cpu", cpu_bf16=True, openvino=False)  # every declared mode has presets


def _segment_parser() -> argparse.ArgumentParser:
    subparsers = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices["segment"]


def test_command_line_offers_the_declared_names() -> None:
    actions = {action.dest: action for action in _segment_parser()._actions}
    assert tuple(actions["model"].choices) == run_choices.MODEL_NAMES
    assert tuple(actions["speed"].choices) == run_choices.SPEED_MODES
    assert actions["speed"].default == run_choices.DEFAULT_SPEED
    assert actions["device"].default == run_choices.DEFAULT_DEVICE
    for device in (*run_choices.DEVICES, "cuda:1"):
        assert actions["device"].type(device) == device
    with pytest.raises(argparse.ArgumentTypeError, match="cuda:N"):
        actions["device"].type("gpu")


def test_panel_choices_are_the_declared_values_in_order() -> None:
    spec = importlib.util.spec_from_file_location("panel_choices_under_test", PANEL_CHOICES)
    panel = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(panel)
    assert tuple(panel.choice_values(panel.MODEL_CHOICES)) == run_choices.MODEL_NAMES
    assert tuple(panel.choice_values(panel.SPEED_CHOICES)) == run_choices.SPEED_MODES
    devices = panel.choice_values(panel.DEVICE_CHOICES)
    assert devices[0] == run_choices.DEFAULT_DEVICE and set(devices) <= set(run_choices.DEVICES)
    assert all(label for _value, label in (*panel.MODEL_CHOICES, *panel.SPEED_CHOICES, *panel.DEVICE_CHOICES))
