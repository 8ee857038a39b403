"""``python -m training.export CKPT --out PATH [--official]``: write trained weights for distribution.

Default: UniversalSeg's format without the training state (class names, prompt template, embedding
source, backbone, training config, version). ``--official``: the released layout (``{'net': {'module.…'}}``)
that the official scripts load.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import command


def export(checkpoint: str | Path, out: str | Path, official: bool = False, overwrite: bool = False) -> Path:
    """Export ``checkpoint`` to ``out`` (atomic; refuses to replace a file unless ``overwrite``)."""
    from UniversalSegLib.weights.checkpoint import export_official, load_model, save_checkpoint

    model = load_model(checkpoint)
    if official:
        return export_official(model, out, overwrite=overwrite)
    return save_checkpoint(model, out, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=command("export"), description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="a training checkpoint (e.g. runs/NAME/checkpoints/final.pth)")
    parser.add_argument("--out", required=True, help="output .pth file")
    parser.add_argument("--official", action="store_true", help="write the released official layout")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    try:
        path = export(args.checkpoint, args.out, args.official, args.overwrite)
    except (FileExistsError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
