"""Training configuration: datasets, label mappings, data and optimisation settings (YAML or JSON).

A dataset maps its label *values* to universal classes (official index 1..32, a catalog key or name,
or a new class named by text). A value may map to several classes (e.g. a tumor voxel is also an organ
voxel, as the official label transfer does for LiTS/KiTS/MSD liver and pancreas). Classes the dataset
does not annotate are stored as 255 ("not annotated") and never trained from its samples; a value that
maps to nothing is background (0) for every annotated class.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from UniversalSegLib.text.prompts import OFFICIAL_TEMPLATE

from .classes import ClassTable
from .config_keys import CASE, DATASET, NEW_CLASS, TOP_LEVEL, unknown_key_messages
from .errors import ConfigError
from .input_files import check_input_files


def setting(default: Any, doc: str) -> Any:
    """A dataclass field with its documentation (shown in docs/training.md)."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class CropSpec:
    """How training crops are drawn: ``pos_neg`` (around foreground) or ``label_classes`` (by ratios)."""

    mode: str = setting("pos_neg", "`pos_neg` (centre on foreground or background) or `label_classes`.")
    classes: list[int] = setting([], "`label_classes`: classes whose voxels centre crops (label i+1 each).")
    ratios: list[float] = setting([1.0, 1.0, 5.0], "`label_classes`: weight of background, then each class.")
    pos: float = setting(2.0, "`pos_neg`: weight of crops centred on foreground.")
    neg: float = setting(1.0, "`pos_neg`: weight of crops centred on background.")


@dataclass
class DatasetSpec:
    """One dataset: its cases, label mapping and sampling options."""

    key: str
    cases: list[tuple[str, str]]
    val_cases: list[tuple[str, str]]
    label_map: dict[int, list[int]]  # label value -> class indices (1-based, official numbering)
    classes: list[int]  # annotated class indices (sorted)
    rl_split: list[tuple[int, int]] = field(default_factory=list)  # (right index, left index)
    crop: CropSpec = field(default_factory=CropSpec)
    rand_zoom: bool = False
    sampling_group: str = ""  # uniform sampling draws this group as one dataset ("" or unset: the key)

    def __post_init__(self) -> None:
        self.sampling_group = self.sampling_group or self.key


@dataclass
class DataSpec:
    """Preprocessing and sampling settings shared by all datasets (official defaults)."""

    spacing: float = setting(1.5, "Isotropic voxel size in mm that cases are resampled to.")
    a_min: float = setting(-175.0, "HU mapped to 0 (intensity window, clipped).")
    a_max: float = setting(250.0, "HU mapped to 1.")
    roi_size: int = setting(
        96,
        "Crop/window side in voxels: unet a multiple of 8 and >= 16, swinunetr a multiple of 32 and >= 64.",
    )
    num_samples: int = setting(2, "Crops drawn per case and step.")
    batch_size: int = setting(1, "Cases per step and process (crops per step: batch_size x num_samples).")
    cache_rate: float = setting(0.0, "Fraction of prepared cases kept in memory.")
    num_workers: int = setting(0, "DataLoader worker processes.")
    uniform_sample: bool = setting(False, "Draw every dataset equally often (else every case equally often).")
    prepare_workers: int = setting(2, "Processes used by `prepare`.")


@dataclass
class ModelSpec:
    """Which network to build and where its starting weights come from."""

    backbone: str = setting("unet", "`unet` or `swinunetr`.")
    init_backbone: str | None = setting(
        None, "Backbone-only weights (Swin SSL / Models Genesis) to start from."
    )
    init_checkpoint: str | None = setting(None, "A released or UniversalSeg checkpoint to fine-tune from.")
    per_sample_norm: bool = setting(False, "Per-sample normalisation in the U-Net backbone.")
    embeddings: str | None = setting(
        None, "Official `txt_encoding.pth` for the 32 classes (else from `init_checkpoint` or CLIP text)."
    )


@dataclass
class TrainSpec:
    """Optimisation settings (official defaults from MODEL_SPEC §5)."""

    epochs: int = setting(2000, "Epochs to train.")
    warmup_epochs: int = setting(100, "Linear warm-up epochs before the cosine decay.")
    optimizer: str = setting("adamw", "`adamw` (official) or `sgd` (with `momentum`).")
    lr: float = setting(1e-4, "Peak learning rate.")
    weight_decay: float = setting(1e-5, "Weight decay.")
    momentum: float = setting(0.9, "SGD momentum (sgd only).")
    steps_per_epoch: int = setting(0, "Optimizer steps per epoch; 0: one pass over the training cases.")
    accumulate: int = setting(1, "Micro-batches per optimizer step (gradient accumulation).")
    amp: str = setting("auto", "`auto` (bf16 on CUDA, off on CPU), `bf16`, `fp16` or `off`.")
    save_every: int = setting(50, "Save `epoch_<n>.pth` and `last.pth` every n epochs (0: never).")
    val_every: int = setting(0, "Validate every n epochs (0: never).")
    dice: str = setting("slice", "Dice loss per first-axis slice (`slice`, released models) or per `volume`.")
    seed: int = setting(0, "Seed of every random choice (data stream, initialisation).")
    grad_clip: float = setting(0.0, "Clip the gradient norm to this value (0: off).")
    deterministic: bool = setting(
        False,
        "PyTorch's deterministic algorithms only (bit-exact reruns and resumes on the same machine and "
        "software; slower, see 'Resume and determinism').",
    )
    max_nonfinite_steps: int = setting(
        10,
        "Stop after this many optimizer steps in a row with a non-finite loss or gradient (each is skipped "
        "and counted; 0: never stop).",
    )


@dataclass
class TrainingConfig:
    """The whole configuration file, resolved (paths absolute, classes as indices)."""

    name: str
    output_dir: Path
    cache_dir: Path
    class_table: ClassTable
    datasets: list[DatasetSpec]
    data: DataSpec
    model: ModelSpec
    train: TrainSpec
    prompt_template: str = OFFICIAL_TEMPLATE
    text_encoder: dict[str, Any] = field(default_factory=dict)  # compute_text_embeddings options
    strict_labels: bool = False  # prepare: a label_map value found in no label is an error, not a warning
    source: Path | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_table)

    def dataset(self, key: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.key == key:
                return spec
        raise ConfigError(f"No dataset with key {key!r}; keys are {[d.key for d in self.datasets]}.")

    def summary(self) -> dict[str, Any]:
        """A JSON-able copy of the settings, stored in checkpoints."""
        return {
            "name": self.name,
            "data": asdict(self.data),
            "model": asdict(self.model),
            "train": asdict(self.train),
            "datasets": {d.key: d.classes for d in self.datasets},
            "prompt_template": self.prompt_template,
        }


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"Config file {path} not found.")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of settings.")
    return data


def _resolve_path(value: str, base: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def _read_list_file(path: Path, root: Path) -> list[tuple[str, str]]:
    """Read an official-style list file: ``image<TAB or space>label`` per line."""
    if not path.is_file():
        raise ConfigError(f"Dataset list file {path} not found.")
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        if len(parts) < 2:
            raise ConfigError(f"{path}:{number}: expected 'image<TAB>label', got {line!r}.")
        pairs.append((_resolve_path(parts[0].strip(), root), _resolve_path(parts[1].strip(), root)))
    return pairs


def _read_cases(
    entry: dict[str, Any], key: str, prefix: str, base: Path, root: Path
) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    items = entry.get(prefix + "cases") or []
    if not isinstance(items, list):
        raise ConfigError(f"Dataset {key!r}: '{prefix}cases' must be a list of cases.")
    for item in items:
        if isinstance(item, dict):
            image, label = item.get("image"), item.get("label")
        elif isinstance(item, list | tuple) and len(item) == 2:
            image, label = item
        else:
            image = label = None
        if not image or not label:
            raise ConfigError(f"Dataset {key!r}: each of '{prefix}cases' needs an image and a label path.")
        pairs.append((_resolve_path(str(image), root), _resolve_path(str(label), root)))
    list_file = entry.get(prefix + "list_file")
    if list_file:
        pairs += _read_list_file(Path(_resolve_path(list_file, base)), root)
    return pairs


def _label_value(key: str, value: Any) -> int:
    """A label_map key as an integer label value (YAML gives ints, JSON strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ConfigError(
        f"Dataset {key!r}: label_map key {value!r} is not an integer label value "
        "(write label values as whole numbers, e.g. `1: liver`)."
    )


def _class_index(table: ClassTable, ref: Any, where: str) -> int:
    try:
        return table.resolve(ref)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _parse_dataset(entry: dict[str, Any], table: ClassTable, base: Path) -> DatasetSpec:
    key = str(entry.get("key") or entry.get("name") or "")
    if not key:
        raise ConfigError("Every dataset needs a 'key' (e.g. '01' or 'btcv').")
    where = f"Dataset {key!r}"
    root = Path(_resolve_path(str(entry.get("root", ".")), base))
    label_map: dict[int, list[int]] = {}
    raw_map = entry.get("label_map") or {}
    if not isinstance(raw_map, dict):
        raise ConfigError(f"{where}: 'label_map' must map label values to classes.")
    for value, targets in raw_map.items():
        targets = targets if isinstance(targets, list) else [targets]
        label_map[_label_value(key, value)] = [
            _class_index(table, t, f"{where} label_map {value}")
            for t in targets
            if t not in (0, None, "background")
        ]
    if not label_map:
        raise ConfigError(f"{where}: 'label_map' (label value -> class) is required.")
    mapped = sorted({i for targets in label_map.values() for i in targets})
    rl_split = [
        (_class_index(table, r, f"{where} rl_split"), _class_index(table, lt, f"{where} rl_split"))
        for r, lt in entry.get("rl_split", []) or []
    ]
    annotated = entry.get("classes")
    classes = sorted({_class_index(table, c, f"{where} classes") for c in annotated}) if annotated else mapped
    classes = sorted(set(classes) | {left for _, left in rl_split if annotated is None})
    crop_entry = dict(entry.get("crop") or {})
    crop_entry["classes"] = [
        _class_index(table, c, f"{where} crop.classes") for c in crop_entry.get("classes", [])
    ]
    crop = _section_values(crop_entry, CropSpec, f"dataset {key!r} crop")
    if crop.mode not in ("pos_neg", "label_classes"):
        raise ConfigError(f"{where}: crop.mode must be 'pos_neg' or 'label_classes'.")
    if crop.mode == "label_classes" and len(crop.ratios) != len(crop.classes) + 1:
        raise ConfigError(f"{where}: crop.ratios needs one ratio for background plus one per class.")
    spec = DatasetSpec(
        key=key,
        cases=_read_cases(entry, key, "", base, root),
        val_cases=_read_cases(entry, key, "val_", base, root),
        label_map=label_map,
        classes=classes,
        rl_split=rl_split,
        crop=crop,
        rand_zoom=_coerce(entry.get("rand_zoom", False), "bool", f"dataset {key!r} rand_zoom"),
        sampling_group=_sampling_group(entry.get("sampling_group"), key),
    )
    for right, left in rl_split:
        if right not in mapped:
            raise ConfigError(f"{where}: rl_split class {right} is not produced by label_map.")
        if left not in spec.classes:
            raise ConfigError(f"{where}: rl_split left class {left} must be annotated ('classes').")
    return spec


def _sampling_group(value: Any, key: str) -> str:
    """A dataset's ``sampling_group``: a non-empty text (default: its key)."""
    if value is None:
        return key
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f'Dataset {key!r}: sampling_group must be a non-empty text such as "01" (quote numbers), '
            f"got {value!r}."
        )
    return value.strip()


def _coerce(value: Any, kind: str, where: str) -> Any:
    """Check (and convert numeric strings of) one setting against its declared type."""
    optional = kind.endswith("| None")
    kind = kind.removesuffix("| None").strip()
    if value is None and optional:
        return None
    try:
        if kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise TypeError
            return float(value)  # also "1e-4", which YAML reads as a string
        if kind == "str":
            if not isinstance(value, str | int | float) or isinstance(value, bool):
                raise TypeError
            return str(value)
        if kind.startswith("list["):
            if not isinstance(value, list):
                raise TypeError
            item_kind = kind[5:-1]
            return [_coerce(item, item_kind, where) for item in value]
    except ConfigError:
        raise  # an item of a list: its own message
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind}, got {value!r}.") from None
    return value


def _section_values(values: dict[str, Any], cls: type, where: str) -> Any:
    """Build a section dataclass from a mapping, converting each value to the field's type."""
    fields = {item.name: str(item.type) for item in dataclasses.fields(cls)}
    messages = unknown_key_messages(values, set(fields), where)
    if messages:
        raise ConfigError("\n".join(messages))
    return cls(**{name: _coerce(value, fields[name], f"{where}.{name}") for name, value in values.items()})


def _section(raw: dict[str, Any], name: str, cls: type) -> Any:
    values = raw.get(name) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"'{name}' must be a mapping of settings.")
    return _section_values(dict(values), cls, name)


def check_keys(raw: dict[str, Any]) -> None:
    """Reject every unknown key of the config, at every nesting level, in one error with suggestions.

    Raises:
        ConfigError: listing each unknown key with its "did you mean" hint.
    """
    messages = unknown_key_messages(raw, TOP_LEVEL, "top level")
    sections = {"data": DataSpec, "model": ModelSpec, "train": TrainSpec}
    for name, cls in sections.items():
        if isinstance(raw.get(name), dict):
            messages += unknown_key_messages(raw[name], set(cls.__dataclass_fields__), name)
    if isinstance(raw.get("text_encoder"), dict):
        messages += unknown_key_messages(raw["text_encoder"], _text_encoder_options(), "text_encoder")
    for item in raw.get("new_classes") or []:
        if isinstance(item, dict):
            messages += unknown_key_messages(item, NEW_CLASS, f"new class {item.get('name')!r}")
    for number, entry in enumerate(raw.get("datasets") or [], 1):
        if not isinstance(entry, dict):
            messages.append(f"datasets: entry {number} must be a mapping of settings.")
            continue
        where = f"dataset {entry.get('key') or entry.get('name') or number!r}"
        messages += unknown_key_messages(entry, DATASET, where)
        if isinstance(entry.get("crop"), dict):
            messages += unknown_key_messages(
                entry["crop"], set(CropSpec.__dataclass_fields__), where + " crop"
            )
        for prefix in ("", "val_"):
            for case in entry.get(prefix + "cases") or []:
                if isinstance(case, dict):
                    messages += unknown_key_messages(case, CASE, f"{where} {prefix}cases")
    if messages:
        raise ConfigError("\n".join(dict.fromkeys(messages)))


def _text_encoder_options() -> set[str]:
    from UniversalSegLib.text import compute_text_embeddings

    options = set(inspect.signature(compute_text_embeddings).parameters)
    return options - {"names", "template", "clip_model", "tokenizer"}


def load_config(
    path: str | Path, overrides: dict[str, dict[str, Any]] | None = None, check_files: bool = True
) -> TrainingConfig:
    """Read and validate a YAML/JSON training configuration, before any heavy work.

    Args:
        path: the config file; relative paths inside it are relative to its folder.
        overrides: ``{section: {setting: value}}`` applied on top (e.g. from the command line).
        check_files: also check that every image, label and weights file exists and is readable.

    Raises:
        ConfigError: a setting is unknown, missing or invalid, or an input file is missing.
    """
    path = Path(path).resolve()
    raw = _read_mapping(path)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    config = config_from_dict(raw, path.parent, source=path)
    if check_files:
        check_input_files(config)
    return config


def config_from_dict(raw: dict[str, Any], base: Path, source: Path | None = None) -> TrainingConfig:
    """Build a :class:`TrainingConfig` from an already parsed mapping (paths relative to ``base``).

    Raises:
        ConfigError: a setting is unknown, missing or invalid (input files are not checked here).
    """
    check_keys(raw)
    table = ClassTable.official()
    for item in raw.get("new_classes", []) or []:
        item = item if isinstance(item, dict) else {"name": item}
        if not item.get("name"):
            raise ConfigError("new_classes: every new class needs a 'name'.")
        table.add(name=str(item["name"]), key=item.get("key"))
    datasets = [_parse_dataset(entry, table, base) for entry in raw.get("datasets", []) or []]
    if not datasets:
        raise ConfigError("The config lists no 'datasets'.")
    if len({d.key for d in datasets}) != len(datasets):
        raise ConfigError("Dataset keys must be unique.")
    name = str(raw.get("name") or (source.stem if source else "run"))
    config = TrainingConfig(
        name=name,
        output_dir=Path(_resolve_path(str(raw.get("output_dir", f"runs/{name}")), base)),
        cache_dir=Path(_resolve_path(str(raw.get("cache_dir", f"cache/{name}")), base)),
        class_table=table,
        datasets=datasets,
        data=_section(raw, "data", DataSpec),
        model=_resolve_model_paths(_section(raw, "model", ModelSpec), base),
        train=_section(raw, "train", TrainSpec),
        prompt_template=str(raw.get("prompt_template", OFFICIAL_TEMPLATE)),
        text_encoder=dict(raw.get("text_encoder") or {}),
        strict_labels=_coerce(raw.get("strict_labels", False), "bool", "strict_labels"),
        source=source,
        raw=raw,
    )
    _check_choices(config)
    return config


def _check_choices(config: TrainingConfig) -> None:
    if config.model.backbone not in ("unet", "swinunetr"):
        raise ConfigError(f"model.backbone must be 'unet' or 'swinunetr', not {config.model.backbone!r}.")
    # MONAI's SwinUNETR needs sides divisible by patch_size**5 = 32; a 32³ crop leaves a 1-voxel
    # bottleneck that instance norm cannot normalise. The U-Net's /8 bottleneck needs 2 voxels likewise.
    divisor = 32 if config.model.backbone == "swinunetr" else 8
    roi = config.data.roi_size
    if roi % divisor or roi < 2 * divisor:
        raise ConfigError(
            f"data.roi_size {roi} does not fit the {config.model.backbone} backbone: it must be a multiple "
            f"of {divisor} and at least {2 * divisor}."
        )
    if config.train.optimizer not in ("adamw", "sgd"):
        raise ConfigError("train.optimizer must be 'adamw' or 'sgd'.")
    if config.train.dice not in ("slice", "volume"):
        raise ConfigError("train.dice must be 'slice' or 'volume'.")
    if config.train.amp not in ("auto", "bf16", "fp16", "off"):
        raise ConfigError(f"train.amp must be auto, bf16, fp16 or off, not {config.train.amp!r}.")
    if config.train.max_nonfinite_steps < 0:
        raise ConfigError("train.max_nonfinite_steps must be 0 (never stop) or a positive number of steps.")


def _resolve_model_paths(spec: ModelSpec, base: Path) -> ModelSpec:
    for name in ("init_backbone", "init_checkpoint", "embeddings"):
        value = getattr(spec, name)
        if value:
            setattr(spec, name, _resolve_path(str(value), base))
    return spec
