"""Prompt templates and lazy importing of open_clip."""

from __future__ import annotations

import subprocess
import sys

import pytest

from UniversalSegLib.catalog import CLASSES
from UniversalSegLib.text import OFFICIAL_TEMPLATE, TEMPLATES, format_prompts, official_prompt_names


def test_official_prompt_is_exact():
    assert format_prompts(["Liver", "Celiac Truck"]) == [
        "A computerized tomography of a Liver",
        "A computerized tomography of a Celiac Truck",
    ]
    assert not OFFICIAL_TEMPLATE.endswith(".")
    assert TEMPLATES["official"] == OFFICIAL_TEMPLATE


def test_other_templates_are_selectable():
    assert format_prompts(["liver"], "ct_scan") == ["A CT scan of the liver"]
    assert format_prompts(["liver"], "{name} in CT") == ["liver in CT"]
    assert format_prompts(["liver"], "CT of {}") == ["CT of liver"]


@pytest.mark.parametrize(
    ("names", "template"), [([], OFFICIAL_TEMPLATE), ([""], OFFICIAL_TEMPLATE), (["a"], "x")]
)
def test_bad_prompt_input_is_rejected(names, template):
    with pytest.raises(ValueError):
        format_prompts(names, template)


def test_official_prompt_names_follow_the_catalog():
    names = official_prompt_names()
    assert len(names) == len(CLASSES) == 32
    assert names[7] == "Arota" and names[24] == "Celiac Truck"


def test_importing_text_and_catalog_does_not_import_open_clip():
    code = (
        "import sys, UniversalSegLib.catalog, UniversalSegLib.text as t\n"
        "assert 'open_clip' not in sys.modules, 'open_clip imported'\n"
        "t.format_prompts(['Liver'])\n"
        "assert 'open_clip' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_importing_catalog_does_not_import_torch():
    code = "import sys, UniversalSegLib.catalog\nprint('torch' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
