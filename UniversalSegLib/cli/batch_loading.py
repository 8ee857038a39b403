"""What the prefetch thread of a batch does for the next CT: read it, then preprocess it.

Both stages run in the background while the current CT is segmented, so on a GPU the next CT is ready
(in the model's space) when the network is free. The preprocessing settings are chosen once for the batch
(``choose_preprocessing(model, options)``, as :func:`~UniversalSegLib.inference.segment` chooses them),
and ``segment`` uses the result instead of preprocessing again. A stage that fails raises
:class:`CtLoadError`, which names the stage, for the consumer to report that CT alone. (With
``--feature-cache``, a CT whose image features are stored does not need its preprocessing; it is done
anyway, in the background, as the lookup needs the model and belongs to ``segment``.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from UniversalSegLib.cli.batch_figures import STAGE_PREPROCESS, STAGE_READ
from UniversalSegLib.cli.batch_inputs import BatchItem


@dataclass
class LoadedCt:
    """One CT as the prefetch thread hands it over.

    Attributes:
        image: the CT (SimpleITK image).
        warning: the intensity check's warning, or None.
        preprocessed: the image in the model's space (a ``PreprocessedImage``).
        seconds: seconds per stage done in the background (``read``, ``preprocess``).
    """

    image: Any
    warning: str | None
    preprocessed: Any
    seconds: dict[str, float] = field(default_factory=dict)


class CtLoadError(Exception):
    """A background stage failed; ``__cause__`` is the error, ``stage`` says which stage."""

    def __init__(self, stage: str, seconds: dict[str, float], warning: str | None = None) -> None:
        super().__init__(stage)
        self.stage = stage
        self.seconds = seconds
        self.warning = warning


class CtLoader:
    """Read and preprocess one batch input (called in the prefetch thread).

    Args:
        settings: the ``PreprocessingSettings`` chosen for the batch.
        cancel: when set after reading, preprocessing is skipped (the CT would be dropped anyway).
        preprocess: ``preprocess(image, settings)``; imported here, in the caller's thread, when None, so
            the background thread never imports MONAI itself.
    """

    def __init__(
        self,
        settings: Any,
        cancel: threading.Event,
        preprocess: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        if preprocess is None:
            from UniversalSegLib.inference.preprocessing import preprocess
        from UniversalSegLib.io import check_ct_intensity, read_image

        self._settings = settings
        self._cancel = cancel
        self._preprocess = preprocess
        self._read_image = read_image
        self._check_intensity = check_ct_intensity

    def __call__(self, item: BatchItem) -> LoadedCt:
        """The CT of ``item``, read and preprocessed.

        Raises:
            CtLoadError: reading or preprocessing failed (the cause is chained).
        """
        seconds: dict[str, float] = {}
        start = time.perf_counter()
        try:
            image = self._read_image(item.input)
            warning = self._check_intensity(image)
        except Exception as exc:
            seconds[STAGE_READ] = time.perf_counter() - start
            raise CtLoadError(STAGE_READ, seconds) from exc
        seconds[STAGE_READ] = time.perf_counter() - start
        if self._cancel.is_set():
            from UniversalSegLib.inference.errors import SegmentationCancelled

            raise CtLoadError(STAGE_PREPROCESS, seconds, warning) from SegmentationCancelled("cancelled")
        start = time.perf_counter()
        try:
            preprocessed = self._preprocess(image, self._settings)
        except Exception as exc:
            seconds[STAGE_PREPROCESS] = time.perf_counter() - start
            raise CtLoadError(STAGE_PREPROCESS, seconds, warning) from exc
        seconds[STAGE_PREPROCESS] = time.perf_counter() - start
        return LoadedCt(image, warning, preprocessed, seconds)
