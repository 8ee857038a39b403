"""The synthetic abdomen CT that calibrates the int8 quantization: deterministic and CT-like."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk  # noqa: N813

from UniversalSegLib.inference.engines.calibration import calibration_windows, synthetic_abdomen_ct


def test_phantom_is_deterministic_and_has_ct_tissues() -> None:
    first, second = synthetic_abdomen_ct(), synthetic_abdomen_ct()
    values = sitk.GetArrayViewFromImage(first)
    assert np.array_equal(values, sitk.GetArrayViewFromImage(second))
    assert first.GetSpacing() == (1.5, 1.5, 1.5)
    assert values.min() <= -1000 and values.max() >= 600  # air and bone
    shares = {
        "air": np.mean(values < -950),
        "lung": np.mean((values > -900) & (values < -700)),
        "fat": np.mean((values > -150) & (values < -50)),
        "soft tissue": np.mean((values > 0) & (values < 100)),
        "contrast": np.mean((values > 120) & (values < 250)),
    }
    assert all(share > 0.005 for share in shares.values()), shares


def test_calibration_windows_are_preprocessed_model_inputs() -> None:
    windows = calibration_windows(32, limit=5)
    assert len(windows) == 5
    assert all(w.shape == (1, 1, 32, 32, 32) and w.dtype == np.float32 for w in windows)
    values = np.concatenate([w.ravel() for w in windows])
    assert values.min() >= 0.0 and values.max() <= 1.0  # the official intensity window
    assert float(np.mean((values > 0.0) & (values < 1.0))) > 0.05  # mostly body, not padding
    assert np.array_equal(calibration_windows(32, limit=5)[3], windows[3])
