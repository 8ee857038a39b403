"""User-facing options of a segmentation run."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InferenceError
from .preprocessing_settings import PreprocessingSettings

BLEND_MODES: tuple[str, ...] = ("gaussian", "gaussian_monai", "constant")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")
ENGINES: tuple[str, ...] = ("torch", "openvino")


@dataclass
class InferenceOptions:
    """How :func:`UniversalSegLib.inference.segment` runs.

    Attributes:
        overlap: sliding-window overlap in [0, 1).
        blend: ``"gaussian"`` (the official MONAI-0.9.0 map), ``"gaussian_monai"`` (current MONAI's
            Gaussian) or ``"constant"``.
        sw_batch_size: windows per forward pass.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast), or ``"int8"`` (engine ``openvino``
            only: the encoder quantized to int8, the rest as ``"fp16"``).
        device: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.
        postprocess: apply the official per-organ post-processing rules.
        roi_size: sliding-window size in voxels (cube side); ``None``: the window the model was trained with
            (its checkpoint's preprocessing settings; 96 for the released models).
        threads: torch CPU threads for the run; ``None`` keeps the current setting.
        engine: ``"torch"``, or ``"openvino"`` to run the image encoder through OpenVINO on CPU windows
            (:mod:`~UniversalSegLib.inference.openvino_engine`; ignored with a warning on a GPU).
        preprocessing: spacing, orientation, intensity window and window size to use instead of the
            model's own (``None``: the checkpoint's, else the official ones); ``roi_size`` still wins for
            the window. A value that differs from what the checkpoint says the model was trained with warns.
    """

    overlap: float = 0.5
    blend: str = "gaussian"
    sw_batch_size: int = 1
    precision: str = "fp32"
    device: str = "auto"
    postprocess: bool = True
    roi_size: int | None = None
    threads: int | None = None
    engine: str = "torch"
    preprocessing: PreprocessingSettings | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`InferenceError` naming the first invalid option."""
        if not 0.0 <= float(self.overlap) < 1.0:
            raise InferenceError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.blend not in BLEND_MODES:
            raise InferenceError(f"blend must be one of {BLEND_MODES}, got {self.blend!r}")
        if int(self.sw_batch_size) < 1:
            raise InferenceError(f"sw_batch_size must be >= 1, got {self.sw_batch_size}")
        if self.precision not in PRECISIONS:
            raise InferenceError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device.split(":")[0] not in DEVICES:
            raise InferenceError(f"device must be one of {DEVICES} (or 'cuda:N'), got {self.device!r}")
        if self.roi_size is not None and int(self.roi_size) < 1:
            raise InferenceError(f"roi_size must be >= 1, got {self.roi_size}")
        if self.engine not in ENGINES:
            raise InferenceError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        if self.precision == "int8" and self.engine != "openvino":
            raise InferenceError(
                "precision int8 needs the OpenVINO engine: add --engine openvino (engine='openvino')"
            )
        if self.threads is not None and int(self.threads) < 1:
            raise InferenceError(f"threads must be >= 1 or None, got {self.threads}")
        if self.preprocessing is not None and not isinstance(self.preprocessing, PreprocessingSettings):
            raise InferenceError(
                "preprocessing must be a PreprocessingSettings or None, "
                f"got {type(self.preprocessing).__name__}"
            )
