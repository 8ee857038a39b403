"""`universalseg segment` keeps image features and answers a second run of the same CT from them."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813 (the conventional alias)

from UniversalSegLib.cli.main import main

TINY = ["--roi-size", "16", "--device", "cpu", "--progress", "none"]


def test_second_run_reuses_features_says_so_and_no_feature_cache_turns_it_off(
    small_ct, unet_checkpoint, tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("UNIVERSALSEG_FEATURE_CACHE_GB", "1")  # Testing/conftest.py keeps none by default
    command = ["segment", str(small_ct), "--weights", str(unet_checkpoint), *TINY]
    assert main([*command, "-o", str(tmp_path / "first.nii.gz"), "--classes", "liver"]) == 0
    first = capsys.readouterr().err
    assert "Reused image features" not in first and "Stored image features" in first
    assert main([*command, "-o", str(tmp_path / "more.nii.gz"), "--classes", "spleen"]) == 0
    again = capsys.readouterr().err
    assert "Estimated time: seconds (reuses the image features of an earlier run" in again
    assert "Reused image features of an earlier run" in again
    assert (
        main([*command, "-o", str(tmp_path / "fresh.nii.gz"), "--classes", "spleen", "--no-feature-cache"])
        == 0
    )
    fresh = capsys.readouterr().err
    assert "Reused image features" not in fresh and "Stored image features" not in fresh
    reused = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "more.nii.gz")))
    np.testing.assert_array_equal(
        reused, sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "fresh.nii.gz")))
    )
