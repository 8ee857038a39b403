"""Config parsing, the official TEMPLATE, the lr schedule, metrics and growing the model with text classes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from training.config import ConfigError, config_from_dict
from training.metrics import dice_score, normalized_surface_dice
from training.schedule import lr_factor, warmup_cosine

CONFIGS = Path(__file__).resolve().parents[2] / "training" / "configs"

# MODEL_SPEC §4 TEMPLATE (dataset key -> annotated universal indices).
SPEC_TEMPLATE = {
    "01": list(range(1, 15)), "01_2": [1, 3, 4, 5, 6, 7, 11, 14], "02": [1, 3, 4, 5, 6, 7, 11, 14], "03": [6],
    "04": [6, 27], "05": [2, 3, 26, 32], "06": [1, 2, 3, 4, 6, 7, 11, 16, 17],
    "07": [6, 1, 3, 2, 7, 4, 5, 11, 14, 18, 19, 12, 13, 20, 21, 23, 24], "08": [6, 2, 3, 1, 11],
    "09": [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 21, 22], "12": [6, 21, 16, 17, 2, 3],
    "13": [6, 2, 3, 1, 11, 8, 9, 7, 4, 5, 12, 13, 25], "14": [11, 28], "10_03": [6, 27], "10_06": [30],
    "10_07": [11, 28], "10_08": [15, 29], "10_09": [1], "10_10": [31],
}  # fmt: skip


def _without_list_files(path: Path) -> dict:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for entry in raw["datasets"]:
        entry.pop("list_file", None)
    return raw


def test_the_official_and_recommended_configs_match_the_spec():
    official = config_from_dict(_without_list_files(CONFIGS / "official.yaml"), CONFIGS)
    recommended = config_from_dict(_without_list_files(CONFIGS / "recommended.yaml"), CONFIGS)
    template = {k: sorted(v) for k, v in SPEC_TEMPLATE.items()}
    assert {d.key: d.classes for d in recommended.datasets} == template
    assert {d.key: d.classes for d in official.datasets} == {
        k: v for k, v in template.items() if k not in ("06", "14")
    }  # the official training lists have neither 06 nor 14
    for config in (official, recommended):
        liver = config.dataset("04")
        assert liver.label_map[2] == [6, 27] and liver.crop.mode == "label_classes"  # tumor merged into organ
        assert config.dataset("12").rl_split == [(2, 3), (16, 17)]
        assert config.dataset("10_06").rand_zoom and not config.dataset("05").rand_zoom
        assert config.train.lr == 1e-4 and config.train.warmup_epochs == 100 and config.train.epochs == 2000
    assert not recommended.dataset("06").rand_zoom


def test_example_config_adds_a_text_class_after_the_official_32():
    config = config_from_dict(_without_list_files(CONFIGS / "example_small.yaml"), CONFIGS)
    assert config.num_classes == 33 and config.class_table.resolve("bladder_wall") == 33
    assert config.dataset("bladder").classes == [21, 33]
    assert config.dataset("kidneys").classes == [2, 3]


def test_bad_configs_say_what_to_fix(tmp_path):
    base = {"datasets": [{"key": "A", "cases": [["a.nii.gz", "b.nii.gz"]], "label_map": {1: "liver"}}]}
    assert config_from_dict(base, tmp_path).dataset("A").classes == [6]
    with pytest.raises(ValueError, match="not_an_organ"):
        config_from_dict({"datasets": [{"key": "A", "label_map": {1: "not_an_organ"}}]}, tmp_path)
    with pytest.raises(ConfigError, match="label_map"):
        config_from_dict({"datasets": [{"key": "A"}]}, tmp_path)
    with pytest.raises(ConfigError, match="train: unknown setting 'learning_rate'"):
        config_from_dict({**base, "train": {"learning_rate": 1}}, tmp_path)
    with pytest.raises(ConfigError, match="not found"):
        config_from_dict({"datasets": [{**base["datasets"][0], "list_file": "missing.txt"}]}, tmp_path)


def test_lr_schedule_matches_the_official_values():
    def official(e: int) -> float:
        if e <= 98:
            return 1e-4 * (e + 1) / 99
        if e == 99:
            return 1e-4
        return 0.5 * 1e-4 * (1 + math.cos(math.pi * (e + 1 - 100) / 1900))

    for epoch in (0, 1, 50, 98, 99, 100, 1000, 1998, 1999):
        assert lr_factor(epoch, 100, 2000) * 1e-4 == pytest.approx(official(epoch), abs=1e-15)
    assert lr_factor(1999, 100, 2000) == pytest.approx(0.0, abs=1e-15)
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = warmup_cosine(optimizer, 100, 2000)
    seen = {}
    for epoch in range(2000):
        seen[epoch] = optimizer.param_groups[0]["lr"]  # the lr the epoch trains with
        optimizer.step()
        scheduler.step()
    for epoch in (0, 98, 99, 100, 1999):
        assert seen[epoch] == pytest.approx(official(epoch), abs=1e-15)


def test_dice_and_surface_dice_on_crafted_masks():
    truth = np.zeros((20, 20, 20), bool)
    truth[5:15, 5:15, 5:15] = True
    shifted = np.roll(truth, 1, axis=0)
    assert dice_score(truth, truth) == 1.0 and dice_score(truth, shifted) == pytest.approx(0.9)
    assert normalized_surface_dice(truth, truth, (1.0, 1.0, 1.0), 0.0) == 1.0
    assert normalized_surface_dice(truth, shifted, (2.0, 1.0, 1.0), 2.0) == 1.0  # 1 voxel = 2 mm on axis 0
    partial = normalized_surface_dice(truth, shifted, (2.0, 1.0, 1.0), 1.0)
    assert 0.0 < partial < 1.0
    assert normalized_surface_dice(truth, np.zeros_like(truth), (1, 1, 1), 5.0) == 0.0


def test_fine_tuning_grows_the_embedding_for_text_classes(tmp_path, monkeypatch):
    import training.model_setup as model_setup
    from UniversalSegLib.testing import write_random_checkpoint
    from UniversalSegLib.weights.checkpoint import load_model

    checkpoint = tmp_path / "released.pth"
    write_random_checkpoint(checkpoint, backbone="unet", layout="official", seed=0)
    prompts = []

    def fake_text_embeddings(names, template, options):  # CLIP weights are not available offline
        prompts.extend(template.replace("{name}", n) for n in names)
        return torch.ones(len(names), 512)

    monkeypatch.setattr(model_setup, "text_embeddings", fake_text_embeddings)
    raw = {
        "new_classes": [{"name": "Urinary Bladder Wall", "key": "bladder_wall"}],
        "model": {"backbone": "unet", "init_checkpoint": str(checkpoint)},
        "datasets": [{"key": "A", "cases": [], "label_map": {1: "bladder_wall"}}],
    }
    model, source = model_setup.build_training_model(config_from_dict(raw, tmp_path))
    released = load_model(checkpoint)
    assert model.num_classes == 33 and model.class_names[-1] == "Urinary Bladder Wall"
    assert prompts == ["A computerized tomography of a Urinary Bladder Wall"]
    assert torch.equal(model.organ_embedding[:32], released.organ_embedding)
    assert torch.equal(model.organ_embedding[32], torch.ones(512))
    new_state, old_state = model.state_dict(), released.state_dict()
    assert all(torch.equal(new_state[k], old_state[k]) for k in old_state if k != "organ_embedding")
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in released.parameters())
    assert "released.pth" in source
