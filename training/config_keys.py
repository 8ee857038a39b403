"""The settings a config file may contain outside the dataclass sections, with their documentation.

The ``data``/``model``/``train`` sections and a dataset's ``crop`` are dataclasses in ``config.py`` whose
fields carry their own documentation (``metadata["doc"]``); this module describes the rest. Both feed the
unknown-key check and the config reference in ``docs/training.md``.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setting:
    """One documented setting: name, type, default (as shown to users) and meaning."""

    name: str
    type: str
    default: str
    doc: str


TOP_LEVEL = (
    Setting("name", "str", "config file name", "Run name, stored in checkpoints."),
    Setting("output_dir", "path", "`runs/<name>`", "Checkpoints, TensorBoard logs and evaluation files."),
    Setting("cache_dir", "path", "`cache/<name>`", "Prepared (label-transferred, resampled) cases."),
    Setting(
        "prompt_template", "str", '`"A computerized tomography of a {name}"`', "CLIP prompt of new classes."
    ),
    Setting(
        "new_classes", "list", "`[]`", "Classes added after the official 32, each `{name, key}` or a name."
    ),
    Setting("text_encoder", "mapping", "`{}`", "Options of `compute_text_embeddings` (e.g. `pretrained`)."),
    Setting(
        "strict_labels",
        "bool",
        "`false`",
        "`prepare` fails (instead of warning) when a `label_map` value occurs in none of a dataset's labels.",
    ),
    Setting("data", "mapping", "`{}`", "Preprocessing and sampling (section below)."),
    Setting("model", "mapping", "`{}`", "Network and starting weights (section below)."),
    Setting("train", "mapping", "`{}`", "Optimisation (section below)."),
    Setting("datasets", "list", "required", "One entry per dataset (section below)."),
)

DATASET = (
    Setting("key", "str", "required", "Unique dataset id (e.g. `01`); `name` is accepted as an alias."),
    Setting("name", "str", "", "Alias of `key`."),
    Setting("root", "path", "config folder", "Folder that relative image/label paths are relative to."),
    Setting("cases", "list", "`[]`", "Training cases: `{image, label}` mappings or `[image, label]` pairs."),
    Setting("val_cases", "list", "`[]`", "Validation cases, same form as `cases`."),
    Setting("list_file", "path", "none", "Official-style list file, `image<TAB>label` per line (training)."),
    Setting("val_list_file", "path", "none", "The same for validation cases."),
    Setting(
        "label_map",
        "mapping",
        "required",
        "Label value (integer) -> class or list of classes (official index, key or name); "
        "unmapped values are background.",
    ),
    Setting("classes", "list", "mapped classes", "Annotated classes; all others are 'not annotated' (255)."),
    Setting("rl_split", "list", "`[]`", "`[right, left]` class pairs split into two organs by position."),
    Setting("crop", "mapping", "`{}`", "How training crops are drawn (section below)."),
    Setting("rand_zoom", "bool", "`false`", "Random zoom augmentation (official for small-structure sets)."),
    Setting(
        "sampling_group",
        "str",
        "the dataset's `key`",
        "With `data.uniform_sample`: datasets sharing a group are drawn as one (a case is picked from all "
        "their cases), e.g. BTCV's two list files, which the official code samples as one dataset.",
    ),
)

CASE = (
    Setting("image", "path", "required", "CT volume (NIfTI, NRRD, MHA)."),
    Setting("label", "path", "required", "Integer label volume on the same grid."),
)

NEW_CLASS = (
    Setting("name", "str", "required", "Class name, put in the CLIP prompt."),
    Setting("key", "str", "slug of the name", "Short key used in label maps and outputs."),
)


def dataclass_settings(cls: type) -> tuple[Setting, ...]:
    """Settings of a config section dataclass, from its fields and their ``metadata['doc']``."""
    settings = []
    for item in dataclasses.fields(cls):
        if item.default is not dataclasses.MISSING:
            default = item.default
        elif item.default_factory is not dataclasses.MISSING:
            default = item.default_factory()
        else:
            default = "required"
        shown = "`null`" if default is None else f"`{_yaml_text(default)}`"
        settings.append(Setting(item.name, str(item.type), shown, item.metadata.get("doc", "")))
    return tuple(settings)


def _yaml_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def unknown_key_messages(
    values: dict[str, Any], known: tuple[Setting, ...] | set[str], where: str
) -> list[str]:
    """One message per key of ``values`` that is not a known setting, with a "did you mean" hint."""
    names = sorted(s.name for s in known) if isinstance(known, tuple) else sorted(known)
    messages = []
    for key in values:
        if key in names:
            continue
        close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(names)}"
        messages.append(f"{where}: unknown setting {key!r}; {hint}")
    return messages
