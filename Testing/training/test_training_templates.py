"""official.yaml is the official recipe (datasets, sampling shares, fp32), recommended.yaml adds to it;
`evaluate` blends and post-processes like our inference."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

from training.config import ConfigError, config_from_dict, load_config
from training.datasets import uniform_sampler
from training.evaluate import _predicted_masks, predict_volume
from training.train import autocast_dtype
from UniversalSegLib.inference.sliding_window import sliding_window_logits

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"

# train.py --datasetkey: the 16 datasets of the official training lists, each one sampling group.
OFFICIAL_GROUPS = [
    "01", "02", "03", "04", "05", "07", "08", "09", "12", "13",
    "10_03", "10_06", "10_07", "10_08", "10_09", "10_10",
]  # fmt: skip
# Cases per dataset in the official PAOT_123457891213_train / PAOT_10_inner_train lists (BTCV: 22 cases
# numbered below 60, 15 at or above); the MSD tasks split its 757 cases (sizes only need to differ).
OFFICIAL_SIZES = {
    "01": 22, "01_2": 15, "02": 27, "03": 14, "04": 95, "05": 204, "07": 80, "08": 706, "09": 145,
    "12": 94, "13": 43, "10_03": 104, "10_06": 50, "10_07": 224, "10_08": 242, "10_09": 32, "10_10": 105,
}  # fmt: skip


def _with_tiny_files(name: str, folder: Path) -> tuple[dict, Path]:
    """The config ``name`` with every path replaced by a tiny file under ``folder`` (two cases per list)."""
    raw = yaml.safe_load((CONFIGS / name).read_text(encoding="utf-8"))
    data = folder / "data"
    data.mkdir(parents=True)
    for entry in raw["datasets"]:
        lines = []
        for number in range(2):
            for kind in ("img", "label"):
                (data / f"{entry['key']}_{kind}{number}.nii.gz").write_bytes(b"x")
            lines.append(f"{entry['key']}_img{number}.nii.gz\t{entry['key']}_label{number}.nii.gz")
        list_file = folder / f"{entry['key']}_train.txt"
        list_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        entry["root"], entry["list_file"] = str(data), str(list_file)
    (folder / "txt_encoding.pth").write_bytes(b"x")
    raw["model"]["embeddings"] = str(folder / "txt_encoding.pth")
    raw["output_dir"], raw["cache_dir"] = str(folder / "run"), str(folder / "cache")
    path = folder / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return raw, path


def _shares(config, sizes: dict[str, int]) -> tuple[Counter, int]:
    """Items per dataset key that the real uniform sampler draws in one epoch (both of two ranks)."""
    keys = [spec.key for spec in config.datasets if sizes.get(spec.key)]
    starts, total = {}, 0
    for key in keys:
        starts[key], total = total, total + sizes[key]
    owner = {index: key for key in keys for index in range(starts[key], starts[key] + sizes[key])}
    counts: Counter = Counter()
    for rank in range(2):
        sampler = uniform_sampler(config, sizes, num_replicas=2, rank=rank)
        sampler.set_epoch(3)
        counts.update(owner[index] for index in sampler)
    return counts, sum(counts.values())


def test_official_config_passes_the_strict_checks_and_is_the_official_recipe(tmp_path):
    raw, path = _with_tiny_files("official.yaml", tmp_path)
    config = load_config(path)  # unknown keys, types and every file checked
    assert [spec.key for spec in config.datasets] == ["01", "01_2", *OFFICIAL_GROUPS[1:]]
    assert [spec.sampling_group for spec in config.datasets] == ["01", "01", *OFFICIAL_GROUPS[1:]]
    assert all(len(spec.cases) == 2 for spec in config.datasets)
    train, data = config.train, config.data
    assert train.amp == "off" and autocast_dtype(train.amp, torch.device("cuda")) is None  # fp32 on GPUs too
    assert (train.epochs, train.warmup_epochs, train.lr, train.weight_decay, train.save_every) == (
        2000, 100, 1e-4, 1e-5, 50,
    )  # fmt: skip
    assert (train.optimizer, train.accumulate, train.grad_clip, train.dice) == ("adamw", 1, 0.0, "slice")
    assert (data.spacing, data.a_min, data.a_max, data.roi_size, data.batch_size) == (1.5, -175, 250, 96, 1)
    assert data.uniform_sample and data.num_samples == 4 and data.cache_rate == 0.6
    assert config.model.backbone == "unet" and config.model.init_backbone is None
    tumors = {
        "04": {2: [6, 27]}, "05": {2: [2, 26], 3: [2, 32]}, "10_03": {2: [6, 27]}, "10_07": {2: [11, 28]},
    }  # fmt: skip
    for key, values in tumors.items():  # POST_TUMOR_DICT: the tumour stays part of its organ
        assert {v: config.dataset(key).label_map[v] for v in values} == values
    assert config.dataset("10_08").label_map == {1: [15], 2: [29]}
    by_class_crops = [s.key for s in config.datasets if s.crop.mode == "label_classes"]
    assert by_class_crops == ["04", "10_03", "10_07", "10_08"]
    assert [s.key for s in config.datasets if s.rand_zoom] == [k for k in OFFICIAL_GROUPS if k[:2] == "10"]


def test_official_sampling_gives_btcv_one_sixteenth(tmp_path):
    config = config_from_dict(_with_tiny_files("official.yaml", tmp_path)[0], tmp_path)
    counts, total = _shares(config, OFFICIAL_SIZES)
    assert total == sum(OFFICIAL_SIZES.values())  # one epoch = one pass, as the official loader
    per_group = total / 16
    btcv = counts["01"] + counts["01_2"]
    assert per_group - 1 < btcv < per_group + 1  # 1/16 of the items, as get_key's single '01'
    for key in OFFICIAL_GROUPS[1:]:
        assert per_group - 1 < counts[key] < per_group + 1, key
    sampler = uniform_sampler(config, OFFICIAL_SIZES)
    shares = dict(zip([s.key for s in config.datasets], sampler.dataset_shares(), strict=True))
    assert shares["01"] + shares["01_2"] == pytest.approx(1 / 16)
    assert shares["01"] == pytest.approx(22 / 37 / 16) and shares["08"] == pytest.approx(1 / 16)
    # Without the shared sampling group, BTCV's two list files would take 2 of 17 draws.
    ungrouped = _with_tiny_files("official.yaml", tmp_path / "ungrouped")[0]
    ungrouped["datasets"][1].pop("sampling_group")
    counts, total = _shares(config_from_dict(ungrouped, tmp_path), OFFICIAL_SIZES)
    assert counts["01"] + counts["01_2"] == pytest.approx(2 * total / 17, abs=2)


def test_recommended_config_adds_06_and_14_and_uses_bf16_on_gpus(tmp_path):
    _, path = _with_tiny_files("recommended.yaml", tmp_path)
    config = load_config(path)
    official = yaml.safe_load((CONFIGS / "official.yaml").read_text(encoding="utf-8"))
    assert [spec.key for spec in config.datasets] == [e["key"] for e in official["datasets"]] + ["06", "14"]
    assert config.dataset("14").label_map == {1: [11], 2: [11], 3: [11, 28], 4: [11, 28], 5: [11, 28]}
    assert config.train.amp == "auto" and autocast_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert config.train.max_nonfinite_steps > 0
    sizes = {**OFFICIAL_SIZES, "06": 20, "14": 400}
    sampler = uniform_sampler(config, sizes)
    shares = dict(zip([s.key for s in config.datasets], sampler.dataset_shares(), strict=True))
    assert shares["01"] + shares["01_2"] == pytest.approx(1 / 18) and shares["14"] == pytest.approx(1 / 18)


def test_sampling_group_is_validated(tmp_path):
    base = {"key": "A", "cases": [["a.nii.gz", "a_seg.nii.gz"]], "label_map": {1: "liver"}}
    with pytest.raises(ConfigError, match="did you mean 'sampling_group'"):
        config_from_dict({"datasets": [{**base, "sampling_grop": "B"}]}, tmp_path)
    with pytest.raises(ConfigError, match="sampling_group must be a non-empty text"):
        config_from_dict({"datasets": [{**base, "sampling_group": 1}]}, tmp_path)
    assert config_from_dict({"datasets": [base]}, tmp_path).dataset("A").sampling_group == "A"


def test_evaluate_blends_windows_like_universalseg_segment():
    torch.manual_seed(0)
    network = torch.nn.Conv3d(1, 3, 3, padding=1)
    image = torch.rand(1, 24, 20, 16)  # 3 x 2 x 1 overlapping windows
    with torch.no_grad():
        ours = predict_volume(network, image, 16, torch.device("cpu"))
        segment = sliding_window_logits(
            image, lambda x, channels: network(x)[:, channels], [0, 1, 2], roi_size=16, blend="gaussian"
        )
        monai_map = sliding_window_logits(
            image, lambda x, channels: network(x)[:, channels], [0, 1, 2], roi_size=16, blend="gaussian_monai"
        )
    assert torch.allclose(ours, torch.sigmoid(segment[0]), atol=1e-6)
    assert not torch.allclose(ours, torch.sigmoid(monai_map[0]), atol=1e-4)  # the map matters


def test_evaluate_postprocess_keeps_the_largest_liver_component():
    probabilities = torch.zeros(32, 20, 20, 20)
    probabilities[5, 2:10, 2:10, 2:10] = 0.9  # liver
    probabilities[5, 15:17, 15:17, 15:17] = 0.9  # a stray piece
    probabilities[26, 4:6, 4:6, 4:6] = 0.9  # liver tumour inside the liver
    probabilities[26, 18:20, 0:2, 0:2] = 0.9  # ... and far outside it
    raw = _predicted_masks(probabilities, [6, 27], postprocess=False)
    processed = _predicted_masks(probabilities, [6, 27], postprocess=True)
    assert raw[6].sum() == 8**3 + 2**3 and processed[6].sum() == 8**3
    assert raw[27].sum() == 2 * 2**3 and processed[27].sum() == 2**3
