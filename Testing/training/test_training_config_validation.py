"""Strict config validation: unknown keys with suggestions, typed values, every input file checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from training.config import ConfigError, config_from_dict, load_config


def _dataset(**extra) -> dict:
    return {"key": "A", "cases": [["a.nii.gz", "a_seg.nii.gz"]], "label_map": {1: "liver"}, **extra}


def test_unknown_keys_at_every_level_are_listed_with_suggestions(tmp_path):
    raw = {
        "ouput_dir": "runs",
        "data": {"spacng": 2.0},
        "datasets": [
            {
                **_dataset(val_case=[]),
                "rlsplit": [["kidney_right", "kidney_left"]],
                "crop": {"mod": "pos_neg"},
                "cases": [{"image": "a.nii.gz", "lable": "b.nii.gz"}],
            }
        ],
        "new_classes": [{"name": "Bladder wall", "kye": "bladder_wall"}],
        "text_encoder": {"pretrainde": "x.pt"},
    }
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, tmp_path)
    message = str(caught.value)
    for expected in (
        "top level: unknown setting 'ouput_dir'; did you mean 'output_dir'?",
        "data: unknown setting 'spacng'; did you mean 'spacing'?",
        "dataset 'A': unknown setting 'val_case'; did you mean 'val_cases'?",
        "dataset 'A': unknown setting 'rlsplit'; did you mean 'rl_split'?",
        "dataset 'A' crop: unknown setting 'mod'; did you mean 'mode'?",
        "dataset 'A' cases: unknown setting 'lable'; did you mean 'label'?",
        "new class 'Bladder wall': unknown setting 'kye'; did you mean 'key'?",
        "text_encoder: unknown setting 'pretrainde'; did you mean 'pretrained'?",
    ):
        assert expected in message
    assert len(message.splitlines()) == 8  # one error listing all, not one at a time


def test_values_are_typed_and_errors_name_dataset_and_key(tmp_path):
    with pytest.raises(
        ConfigError, match=r"Dataset 'kits': label_map key 'one' is not an integer label value"
    ):
        config_from_dict(
            {"datasets": [{**_dataset(key="kits"), "label_map": {"one": "kidney_right"}}]}, tmp_path
        )
    with pytest.raises(ConfigError, match=r"data\.spacing: expected float, got '1\.5mm'"):
        config_from_dict({"datasets": [_dataset()], "data": {"spacing": "1.5mm"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"train\.epochs: expected int, got 2\.5"):
        config_from_dict({"datasets": [_dataset()], "train": {"epochs": 2.5}}, tmp_path)
    with pytest.raises(ConfigError, match=r"dataset 'A' crop\.ratios: expected float, got 'x'"):
        config_from_dict({"datasets": [_dataset(crop={"ratios": [1, "x"]})]}, tmp_path)
    with pytest.raises(ConfigError, match="Dataset 'A' label_map 1: .*not_an_organ"):
        config_from_dict({"datasets": [{**_dataset(), "label_map": {1: "not_an_organ"}}]}, tmp_path)
    config = config_from_dict(  # YAML reads 1e-4 as a string; JSON label values are strings
        {"datasets": [{**_dataset(), "label_map": {"5": "liver"}}], "train": {"lr": "1e-4", "epochs": 3.0}},
        tmp_path,
    )
    assert config.train.lr == 1e-4 and config.train.epochs == 3 and config.dataset("A").label_map == {5: [6]}


ROI_CASES = [("swinunetr", 32, False), ("swinunetr", 64, True), ("swinunetr", 80, False), ("unet", 8, False)]


@pytest.mark.parametrize(("backbone", "roi", "ok"), [*ROI_CASES, ("unet", 16, True)])
def test_roi_size_must_fit_the_backbone(tmp_path, backbone, roi, ok):
    raw = {"datasets": [_dataset()], "model": {"backbone": backbone}, "data": {"roi_size": roi}}
    if ok:
        assert config_from_dict(raw, tmp_path).data.roi_size == roi
    else:
        with pytest.raises(ConfigError, match=f"data.roi_size {roi} does not fit the {backbone} backbone"):
            config_from_dict(raw, tmp_path)


def test_every_missing_input_file_is_reported_at_once(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    present = images / "case0.nii.gz"
    present.write_bytes(b"x")
    cases = [[str(present), str(present)]] + [[f"images/case{i}.nii.gz", str(present)] for i in range(1, 13)]
    raw = {
        "datasets": [{**_dataset(), "cases": cases}],
        "model": {"embeddings": "missing_txt_encoding.pth"},
    }
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as caught:
        load_config(config_path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("13 input file(s) of the config cannot be read")
    assert lines[1] == f"  dataset 'A' image: {images / 'case1.nii.gz'} (missing)"
    assert len(lines) == 1 + 10 + 1 and lines[-1] == "  ... and 3 more"
    config_from_dict(raw, tmp_path)  # parsing alone does not touch the files
    assert (
        Path(load_config(config_path, check_files=False).model.embeddings).name == "missing_txt_encoding.pth"
    )
