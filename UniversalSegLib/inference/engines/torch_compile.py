"""``torch.compile`` for the image encoder on CUDA GPUs, compiled once per machine, with a fallback.

The encoder (backbone, global pooling, pre-head convolution) is what the windows spend their time in; the
class heads stay uncompiled (they depend on the classes asked for). Inductor's compiled graphs and kernels
go to ``<home>/torch_compile`` (``TORCHINDUCTOR_CACHE_DIR``, unless the user set it), where a later process
finds them: it traces the model again (seconds) but compiles nothing. A compilation that fails (no
compiler, an unsupported GPU, a PyTorch bug) is reported once in the run's warnings and the run continues
with the uncompiled encoder, whose results are the same up to float rounding.

Compiling pays only over many windows: the first compilation of Swin UNETR takes minutes on a fresh
machine. The batch command line turns it on for long batches on CUDA (``--compile auto``); a single run
asks for it with ``InferenceOptions(compile=True)`` / ``--compile on``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...cache_paths import compile_folder
from ..errors import SegmentationCancelled, error_summary

if TYPE_CHECKING:
    import torch

    from ..options import InferenceOptions

logger = logging.getLogger(__name__)

INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
FeatureFunction = Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]


def compiles_on(options: InferenceOptions, device: torch.device) -> bool:
    """Whether a run with ``options`` compiles the encoder on ``device`` (CUDA GPUs only)."""
    return bool(options.compile) and device.type == "cuda"


def use_compile_cache() -> str:
    """Point Inductor's cache at ``<home>/torch_compile`` unless the user chose a folder; returns it.

    Importing ``torch._dynamo`` writes PyTorch's default (a folder in the system's temporary folder, which
    does not survive a restart) into ``TORCHINDUCTOR_CACHE_DIR``: that value is not taken for a choice.
    """
    import torch._inductor.config as inductor_config
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    chosen = os.environ.get(INDUCTOR_CACHE_ENV)
    if chosen and os.path.abspath(chosen) != os.path.abspath(default_cache_dir()):
        folder = chosen
    else:
        folder = str(compile_folder())
    os.makedirs(folder, exist_ok=True)
    if os.environ.get(INDUCTOR_CACHE_ENV) != folder:
        from torch._inductor.utils import clear_caches

        os.environ[INDUCTOR_CACHE_ENV] = folder
        clear_caches()  # paths derived from the old folder
    inductor_config.fx_graph_cache = True  # compiled graphs are reused across processes
    return folder


class CompiledImageFeatures:
    """``model.image_features`` through ``torch.compile``; the uncompiled method once compiling fails.

    Args:
        model: a model with ``image_features(x) -> (image [B, 256], head features [B, 8, D, H, W])``.
        warnings: receives one line when the compiled encoder cannot be used (the caller reports it); without
            a list, that line is logged.
        compile_function: ``torch.compile`` (tests replace it).
    """

    def __init__(
        self,
        model: Any,
        warnings: list[str] | None = None,
        compile_function: Callable[..., FeatureFunction] | None = None,
    ) -> None:
        import torch

        self.model = model
        self._reported = warnings is not None
        self.warnings = warnings if warnings is not None else []
        self.cache_folder = use_compile_cache()
        compile_function = compile_function or torch.compile
        # static shapes: one graph per window batch size (the last batch may be smaller), each cached
        self._compiled: FeatureFunction | None = compile_function(model.image_features, dynamic=False)

    @property
    def compiled(self) -> bool:
        """Whether the compiled encoder is (still) in use."""
        return self._compiled is not None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        if self._compiled is not None:
            try:
                return self._compiled(x)
            except (torch.OutOfMemoryError, SegmentationCancelled, KeyboardInterrupt):
                raise  # the device fallback and cancellation handle these
            except Exception as error:  # noqa: BLE001 - any compiler failure: run uncompiled
                message = (
                    f"torch.compile could not compile the image encoder ({error_summary(error)}); "
                    "running it uncompiled"
                )
                if not self._reported:
                    logger.warning(message)
                self.warnings.append(message)
                self._compiled = None
        return self.model.image_features(x)
