"""Training configuration: datasets, label mappings, data and optimisation settings (YAML or JSON).

A dataset maps its label *values* to universal classes (official index 1..32, a catalog key or name,
or a new class named by text). A value may map to several classes (e.g. a tumor voxel is also an organ
voxel, as the official label transfer does for LiTS/KiTS/MSD liver and pancreas). Classes the dataset
does not annotate are stored as 255 ("not annotated") and never trained from its samples; a value that
maps to nothing is background (0) for every annotated class.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.classes import ClassTable
from UniversalSegLib.text.prompts import OFFICIAL_TEMPLATE


class ConfigError(ValueError):
    """The training configuration is invalid; the message says what to fix."""


@dataclass
class CropSpec:
    """How training crops are drawn: ``pos_neg`` (around foreground) or ``label_classes`` (by ratios)."""

    mode: str = "pos_neg"
    classes: list[int] = field(default_factory=list)  # label_classes: class indices, label i+1 each
    ratios: list[float] = field(default_factory=lambda: [1.0, 1.0, 5.0])
    pos: float = 2.0
    neg: float = 1.0


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


@dataclass
class DataSpec:
    """Preprocessing and sampling settings shared by all datasets (official defaults)."""

    spacing: float = 1.5
    a_min: float = -175.0
    a_max: float = 250.0
    roi_size: int = 96
    num_samples: int = 2
    batch_size: int = 1
    cache_rate: float = 0.0
    num_workers: int = 0
    uniform_sample: bool = False
    prepare_workers: int = 2


@dataclass
class ModelSpec:
    """Which network to build and where its starting weights come from."""

    backbone: str = "unet"
    init_backbone: str | None = None  # backbone-only weights (Swin SSL / Models Genesis)
    init_checkpoint: str | None = None  # a released or our checkpoint to fine-tune from
    per_sample_norm: bool = False
    embeddings: str | None = None  # official txt_encoding.pth for the 32 classes (else from init_checkpoint)


@dataclass
class TrainSpec:
    """Optimisation settings (official defaults from MODEL_SPEC §5)."""

    epochs: int = 2000
    warmup_epochs: int = 100
    optimizer: str = "adamw"  # adamw (official) or sgd (official for unetpp: lr 1e-3, momentum 0.9, wd 1e-4)
    lr: float = 1e-4
    weight_decay: float = 1e-5
    momentum: float = 0.9  # sgd only
    steps_per_epoch: int = 0  # 0: one pass over the training cases
    accumulate: int = 1
    amp: str = "auto"  # auto (bf16 on CUDA), bf16, fp16, off
    save_every: int = 50
    val_every: int = 0
    dice: str = "slice"  # slice (released models) or volume
    seed: int = 0
    grad_clip: float = 0.0


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
        return json.loads(text)
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


def _read_cases(entry: dict[str, Any], prefix: str, base: Path, root: Path) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in entry.get(prefix + "cases", []) or []:
        if isinstance(item, dict):
            image, label = item.get("image"), item.get("label")
        else:
            image, label = item
        if not image or not label:
            raise ConfigError(f"Dataset {entry.get('key')!r}: each case needs an image and a label path.")
        pairs.append((_resolve_path(image, root), _resolve_path(label, root)))
    list_file = entry.get(prefix + "list_file")
    if list_file:
        pairs += _read_list_file(Path(_resolve_path(list_file, base)), root)
    return pairs


def _parse_dataset(entry: dict[str, Any], table: ClassTable, base: Path) -> DatasetSpec:
    key = str(entry.get("key") or entry.get("name") or "")
    if not key:
        raise ConfigError("Every dataset needs a 'key' (e.g. '01' or 'btcv').")
    root = Path(_resolve_path(str(entry.get("root", ".")), base))
    label_map: dict[int, list[int]] = {}
    for value, targets in (entry.get("label_map") or {}).items():
        targets = targets if isinstance(targets, list) else [targets]
        label_map[int(value)] = [table.resolve(t) for t in targets if t not in (0, None, "background")]
    if not label_map:
        raise ConfigError(f"Dataset {key!r}: 'label_map' (label value -> class) is required.")
    mapped = sorted({i for targets in label_map.values() for i in targets})
    rl_split = [(table.resolve(r), table.resolve(lt)) for r, lt in entry.get("rl_split", []) or []]
    annotated = entry.get("classes")
    classes = sorted({table.resolve(c) for c in annotated}) if annotated else mapped
    classes = sorted(set(classes) | {left for _, left in rl_split if annotated is None})
    crop_entry = dict(entry.get("crop") or {})
    crop_entry["classes"] = [table.resolve(c) for c in crop_entry.get("classes", [])]
    crop = CropSpec(**crop_entry)
    if crop.mode not in ("pos_neg", "label_classes"):
        raise ConfigError(f"Dataset {key!r}: crop.mode must be 'pos_neg' or 'label_classes'.")
    if crop.mode == "label_classes" and len(crop.ratios) != len(crop.classes) + 1:
        raise ConfigError(f"Dataset {key!r}: crop.ratios needs one ratio for background plus one per class.")
    spec = DatasetSpec(
        key=key,
        cases=_read_cases(entry, "", base, root),
        val_cases=_read_cases(entry, "val_", base, root),
        label_map=label_map,
        classes=classes,
        rl_split=rl_split,
        crop=crop,
        rand_zoom=bool(entry.get("rand_zoom", False)),
    )
    for right, left in rl_split:
        if right not in mapped:
            raise ConfigError(f"Dataset {key!r}: rl_split class {right} is not produced by label_map.")
        if left not in spec.classes:
            raise ConfigError(f"Dataset {key!r}: rl_split left class {left} must be annotated ('classes').")
    return spec


def _section(raw: dict[str, Any], name: str, cls: type) -> Any:
    values = dict(raw.get(name) or {})
    known = set(cls.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"Unknown '{name}' settings {sorted(unknown)}; valid: {sorted(known)}.")
    return cls(**values)


def load_config(path: str | Path, overrides: dict[str, dict[str, Any]] | None = None) -> TrainingConfig:
    """Read and validate a YAML/JSON training configuration.

    Args:
        path: the config file; relative paths inside it are relative to its folder.
        overrides: ``{section: {setting: value}}`` applied on top (e.g. from the command line).

    Raises:
        ConfigError: a setting is missing or invalid.
    """
    path = Path(path).resolve()
    raw = _read_mapping(path)
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return config_from_dict(raw, path.parent, source=path)


def config_from_dict(raw: dict[str, Any], base: Path, source: Path | None = None) -> TrainingConfig:
    """Build a :class:`TrainingConfig` from an already parsed mapping (paths relative to ``base``)."""
    table = ClassTable.official()
    for item in raw.get("new_classes", []) or []:
        item = item if isinstance(item, dict) else {"name": item}
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
        source=source,
        raw=raw,
    )
    if config.model.backbone not in ("unet", "swinunetr"):
        raise ConfigError(f"model.backbone must be 'unet' or 'swinunetr', not {config.model.backbone!r}.")
    divisor = 32 if config.model.backbone == "swinunetr" else 8
    if config.data.roi_size % divisor:
        raise ConfigError(
            f"data.roi_size {config.data.roi_size} must be a multiple of {divisor} "
            f"for the {config.model.backbone} backbone."
        )
    if config.train.optimizer not in ("adamw", "sgd"):
        raise ConfigError("train.optimizer must be 'adamw' or 'sgd'.")
    if config.train.dice not in ("slice", "volume"):
        raise ConfigError("train.dice must be 'slice' or 'volume'.")
    return config


def _resolve_model_paths(spec: ModelSpec, base: Path) -> ModelSpec:
    for name in ("init_backbone", "init_checkpoint", "embeddings"):
        value = getattr(spec, name)
        if value:
            setattr(spec, name, _resolve_path(str(value), base))
    return spec
