"""The segment command imports MONAI without torchvision, matplotlib, scipy.signal and scikit-learn (less
memory, a faster start), and each of them still imports afterwards."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from UniversalSegLib.inference.lean_import import import_monai_lean
assert import_monai_lean()
assert "monai" in sys.modules and "torchvision" not in sys.modules
assert not {"matplotlib", "scipy.signal", "sklearn"} & set(sys.modules)
from UniversalSegLib.model import UniversalModel
UniversalModel("swinunetr")
assert "torchvision" not in sys.modules
import torchvision
assert torchvision.__version__
import scipy.signal
assert scipy.signal.hilbert
assert not import_monai_lean()  # MONAI already there: nothing to do
print("ok")
"""


def test_monai_imported_without_torchvision_in_a_fresh_process():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("ok")
