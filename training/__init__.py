"""Training code for the CLIP-Driven Universal Model (prepare, train, evaluate, export).

Installed (``pip install ".[training]"``) this package is ``universalseg_training``; in a source checkout
the same folder also imports as ``training``. Entry points (``-m training.<tool>`` works from a checkout)::

    python -m universalseg_training.prepare CONFIG
    python -m universalseg_training.train CONFIG [--backbone swinunetr|unet] [--resume CKPT]
    python -m universalseg_training.evaluate CONFIG --weights CKPT
    python -m universalseg_training.export CKPT --out PATH [--official]

Multi-GPU: ``torchrun --nproc_per_node N -m universalseg_training.train CONFIG``.
Modules import each other relatively, so both names work.
"""

INSTALLED_NAME = "universalseg_training"


def command(tool: str) -> str:
    """The ``python -m ...`` command of one entry point under the name this package was imported as."""
    return f"python -m {__name__}.{tool}"
