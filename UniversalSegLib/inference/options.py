"""User-facing options of a segmentation run."""

from __future__ import annotations

from dataclasses import dataclass

from ..run_choices import DEFAULT_DEVICE, DEVICES, is_device_name
from .errors import InferenceError
from .preprocessing_settings import PreprocessingSettings

BLEND_MODES: tuple[str, ...] = ("gaussian", "gaussian_monai", "constant")
PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8")
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
            (:mod:`~UniversalSegLib.inference.engines.openvino_engine`; ignored with a warning on a GPU).
        preprocessing: spacing, orientation, intensity window and window size to use instead of the
            model's own (``None``: the checkpoint's, else the official ones); ``roi_size`` still wins for
            the window. A value that differs from what the checkpoint says the model was trained with warns.
        tf32: TensorFloat-32 on CUDA GPUs for this run (:mod:`~UniversalSegLib.inference.tf32`): ``True``
            (the default, the official code's behaviour: float32 convolutions and matrix products on TF32
            tensor cores), ``False`` (strict IEEE float32, slower), ``None`` (leave the process's PyTorch
            settings as they are). No effect on CPUs.
        compile: run the image encoder through ``torch.compile`` on CUDA GPUs
            (:mod:`~UniversalSegLib.inference.engines.torch_compile`): compiled once per model, window
            shape and precision, kept in the cache folder so a later process loads it instead of compiling
            again; a compilation that fails falls back to the uncompiled model with a warning. Ignored on
            CPUs and MPS.
    """

    overlap: float = 0.5
    blend: str = "gaussian"
    sw_batch_size: int = 1
    precision: str = "fp32"
    device: str = DEFAULT_DEVICE
    postprocess: bool = True
    roi_size: int | None = None
    threads: int | None = None
    engine: str = "torch"
    preprocessing: PreprocessingSettings | None = None
    tf32: bool | None = True
    compile: bool = False

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
        if not is_device_name(self.device):
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
        if not (self.tf32 is None or isinstance(self.tf32, bool)):
            raise InferenceError(f"tf32 must be True, False or None, got {self.tf32!r}")
        if not isinstance(self.compile, bool):
            raise InferenceError(f"compile must be True or False, got {self.compile!r}")
        if self.preprocessing is not None and not isinstance(self.preprocessing, PreprocessingSettings):
            raise InferenceError(
                "preprocessing must be a PreprocessingSettings or None, "
                f"got {type(self.preprocessing).__name__}"
            )
