"""The README's "Python library" snippet runs as written (given its two input files exist)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_library_snippet() -> str:
    """The first ``python`` code block of the README section "Python library"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Python library\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python code block in the README section 'Python library'"
    return match.group(1)


def _quoted_argument(code: str, function: str) -> str:
    match = re.search(rf'{function}\("([^"]+)"', code)
    assert match, f"the snippet no longer calls {function}() with a file name"
    return match.group(1)


@pytest.mark.slow
def test_readme_python_snippet_runs_as_written(small_ct, tmp_path, monkeypatch):
    """Run the snippet unchanged in a folder holding the files it names.

    The weights file is a random-init U-Net written under the snippet's file name (the snippet detects the
    backbone from the keys; a Swin UNETR 96³ forward pass is too slow for the test suite), with a
    preprocessing sidecar that says it was trained on 32³ windows (so ``segment`` runs one 32³ window, not
    a 96³ one), and the CT is a 16³ crop of the real example CT.
    """
    import dataclasses

    from UniversalSegLib.inference.preprocessing_settings import OFFICIAL
    from UniversalSegLib.testing import write_random_checkpoint
    from UniversalSegLib.weights.preprocessing_sidecar import write_sidecar

    code = python_library_snippet()
    monkeypatch.chdir(tmp_path)
    weights = write_random_checkpoint(tmp_path / _quoted_argument(code, "load_model"), backbone="unet")
    write_sidecar(weights, dataclasses.replace(OFFICIAL, roi_size=32))
    shutil.copyfile(small_ct, tmp_path / _quoted_argument(code, "read_image"))
    namespace: dict = {"__name__": "readme_snippet"}

    exec(compile(code, f"{README.name} (Python library)", "exec"), namespace)  # noqa: S102 - our own README

    logits = namespace["logits"]
    assert tuple(logits.shape) == (1, 32, *namespace["x"].shape[2:])
    assert not logits.requires_grad  # computed without autograd: half the memory
    result = namespace["result"]
    assert set(result.masks) == {6, 27}
    assert result.masks[6].GetSize() == namespace["read_image"](str(small_ct)).GetSize()
