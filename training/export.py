"""``python -m training.export CKPT --out PATH [--official]``: write trained weights for distribution.

Default: UniversalSeg's format without the training state (class names, prompt template, embedding
source, backbone, training config, preprocessing, version). ``--official``: the released layout
(``{'net': {'module.…'}}``) that the official scripts load. That layout has no room for the preprocessing
(spacing, intensity window, window size): when it is not the official one it goes into a
``<name>.preprocessing.json`` sidecar, which UniversalSeg reads, and the official scripts' options for it
are printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import command


def export(checkpoint: str | Path, out: str | Path, official: bool = False, overwrite: bool = False) -> Path:
    """Export ``checkpoint`` to ``out`` (atomic; refuses to replace a file unless ``overwrite``).

    With ``official``, a non-official preprocessing is written to ``<name>.preprocessing.json`` beside it.
    """
    from UniversalSegLib.weights.checkpoint import export_official, load_model, save_checkpoint

    model = load_model(checkpoint)
    if official:
        return export_official(model, out, overwrite=overwrite)
    return save_checkpoint(model, out, overwrite=overwrite)


def preprocessing_note(out: str | Path) -> str:
    """What a user of the exported file must know about its preprocessing, as UniversalSeg reads it back."""
    from UniversalSegLib.inference.preprocessing_settings import OFFICIAL, preprocessing_settings
    from UniversalSegLib.weights.checkpoint import load_model
    from UniversalSegLib.weights.preprocessing_sidecar import official_script_arguments, sidecar_path

    model = load_model(out)
    settings = preprocessing_settings(model)
    if settings == OFFICIAL:
        return f"Preprocessing: {settings.describe()} (the official settings)"
    if model.metadata.get("source_format") != "official":
        return f"Preprocessing: {settings.describe()} (stored in the file)"
    return (
        f"Preprocessing: {settings.describe()}, stored beside it in {sidecar_path(out).name} "
        "(keep the two together; UniversalSeg reads it).\n"
        f"The official scripts ignore that file: run them with {official_script_arguments(settings)}"
    )


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
    print(preprocessing_note(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
