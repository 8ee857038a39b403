"""Import MONAI without the optional packages that its unused features pull in.

``import monai`` loads every MONAI sub-package, and with them ``torchvision.models`` (for MONAI's detection
networks, FPN backbones and ``TorchVision`` transform), ``matplotlib.pyplot`` (plotting helpers),
``scipy.signal`` (signal transforms, ultrasound confidence maps) and scikit-learn (embedding-collapse
metrics), none of which UniversalSeg uses. On the machines we measured torchvision adds about 150 MiB to the
peak memory of a segmentation run (docs/speed.md), and the other three about 2.5 s to its start on 2 cores
(which matters most for a re-query answered from stored image features in a few seconds). Inference-only
processes (the ``universalseg segment`` command, which the Slicer module also runs) call
:func:`import_monai_lean` first.
Not for shared processes such as Slicer's own Python: there MONAI's features that need these packages
would stay unavailable for the rest of the session.
"""

from __future__ import annotations

import importlib
import sys

#: Hidden while MONAI imports; each still imports normally afterwards.
HIDDEN_PACKAGES: tuple[str, ...] = ("torchvision", "matplotlib", "scipy.signal", "sklearn")


def import_monai_lean() -> bool:
    """Import MONAI with :data:`HIDDEN_PACKAGES` hidden; returns whether they were (MONAI not yet imported).

    MONAI then treats them as missing: its features that need them fail when used in this process,
    everything else works. Importing the packages themselves still works afterwards.
    """
    if "monai" in sys.modules:
        return False
    hidden = [name for name in HIDDEN_PACKAGES if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import name` fail
    try:
        importlib.import_module("monai")
    finally:
        for name in hidden:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]
    return bool(hidden)
