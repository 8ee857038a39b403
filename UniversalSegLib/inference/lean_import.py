"""Import MONAI without the torchvision models that its optional extras pull in.

``import monai`` loads every MONAI sub-package, and with them ``torchvision.models`` (for MONAI's detection
networks, FPN backbones and ``TorchVision`` transform, none of which UniversalSeg uses). On the machines we
measured that adds about 150 MiB to the peak memory of a segmentation run (docs/speed.md). Inference-only
processes (the ``universalseg segment`` command, which the Slicer module also runs) call
:func:`import_monai_without_torchvision` first. Not for shared processes such as Slicer's own Python: there
MONAI's torchvision-based features would stay unavailable for the rest of the session.
"""

from __future__ import annotations

import importlib
import sys


def import_monai_without_torchvision() -> bool:
    """Import MONAI with ``torchvision`` hidden; returns whether it was hidden (MONAI not yet imported).

    MONAI then treats torchvision as missing: its torchvision-based features fail when used in this
    process, everything else works. ``import torchvision`` itself still works afterwards.
    """
    if "monai" in sys.modules or "torchvision" in sys.modules:
        return False
    sys.modules["torchvision"] = None  # type: ignore[assignment]  # makes `import torchvision` fail
    try:
        importlib.import_module("monai")
    finally:
        if sys.modules.get("torchvision", 0) is None:
            del sys.modules["torchvision"]
    return True
