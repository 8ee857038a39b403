"""Sliding-window inference over the preprocessed volume, with progress and cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from monai.data.utils import dense_patch_slices
from monai.inferers import sliding_window_inference

from .device import autocast_context
from .errors import InferenceError, SegmentationCancelled
from .weight_map import window_weight_map

WindowCallback = Callable[[int, int], None]


class Predictor(Protocol):
    """Anything called as ``predictor(x, channels=[...])`` on ``[B, 1, D, H, W]`` windows that returns
    ``[B, len(channels), D, H, W]`` logits, e.g. :class:`UniversalSegLib.model.UniversalModel`."""

    def __call__(self, x: torch.Tensor, channels: Sequence[int] | None = None) -> torch.Tensor: ...


def window_grid_shape(image_shape: Sequence[int], roi_size: Sequence[int], overlap: float) -> tuple[int, ...]:
    """Number of window positions per axis, as MONAI's sliding window places them (after padding)."""
    padded = [max(int(n), int(r)) for n, r in zip(image_shape, roi_size, strict=True)]
    intervals = [
        r if n == r else max(int(r * (1 - overlap)), 1) for n, r in zip(padded, roi_size, strict=True)
    ]
    slices = dense_patch_slices(padded, roi_size, intervals)
    return tuple(len({s[axis].start for s in slices}) for axis in range(len(padded)))


def count_windows(image_shape: Sequence[int], roi_size: Sequence[int], overlap: float) -> int:
    """Total number of windows the sliding window visits for one image."""
    total = 1
    for count in window_grid_shape(image_shape, roi_size, overlap):
        total *= count
    return total


class NetworkClock:
    """Seconds spent inside the predictor: the wall clock on CPUs; CUDA events on GPUs, read once at the
    end, so timing never makes the CPU wait for the GPU between windows. Call :meth:`start` and
    :meth:`stop` around each forward pass, :meth:`total` at the end."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.seconds = 0.0
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._started: float | torch.cuda.Event = 0.0

    def start(self) -> None:
        if self.cuda:
            self._started = torch.cuda.Event(enable_timing=True)
            self._started.record()
        else:
            self._started = time.perf_counter()

    def stop(self) -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._started, end))
        else:
            self.seconds += time.perf_counter() - self._started

    def total(self) -> float:
        """All measured seconds (waits for the GPU's queued windows once)."""
        if self._events:
            try:
                self._events[-1][1].synchronize()
                self.seconds += sum(start.elapsed_time(end) for start, end in self._events) / 1000.0
            except RuntimeError:  # a failed run (the error in flight matters, not its timing)
                pass
            self._events.clear()
        return self.seconds


class _WindowRunner:
    """Wraps the predictor: channel selection, autocast, cancellation and window counting."""

    def __init__(
        self,
        predictor: Predictor,
        channels: Sequence[int],
        device: torch.device,
        precision: str,
        total: int,
        on_window: WindowCallback | None,
        cancel: threading.Event | None,
    ) -> None:
        self.predictor, self.channels = predictor, list(channels)
        self.device, self.precision = device, precision
        self.total, self.done = total, 0
        self.on_window, self.cancel = on_window, cancel
        self.clock = NetworkClock(device)

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        if self.cancel is not None and self.cancel.is_set():
            raise SegmentationCancelled(f"cancelled after {self.done} of {self.total} windows")
        self.clock.start()
        with autocast_context(self.device, self.precision):
            logits = self.predictor(window, channels=self.channels)
        self.clock.stop()
        if logits.shape[0] != window.shape[0] or logits.shape[1] != len(self.channels):
            raise InferenceError(
                f"the model returned logits of shape {tuple(logits.shape)} for {window.shape[0]} window(s) "
                f"and {len(self.channels)} channel(s); it must honour the channels argument"
            )
        self.done += window.shape[0]
        if self.on_window is not None:
            self.on_window(self.done, self.total)  # on GPUs: queued, the GPU may still be computing it
        return logits.float()


def sliding_window_logits(
    image: torch.Tensor,
    predictor: Predictor,
    channels: Sequence[int],
    *,
    roi_size: int | Sequence[int] = 96,
    overlap: float = 0.5,
    blend: str = "gaussian",
    sw_batch_size: int = 1,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    on_window: WindowCallback | None = None,
    cancel: threading.Event | None = None,
    stats: dict[str, float] | None = None,
) -> torch.Tensor:
    """Blended logits of ``channels`` over the whole image.

    Args:
        image: ``[1, 1, X, Y, Z]`` (or ``[1, X, Y, Z]``) float tensor.
        predictor: see :class:`Predictor`.
        channels: 0-based model output channels to compute, in output order.
        roi_size: window size (one int for a cube).
        overlap, blend, sw_batch_size: as in :class:`~UniversalSegLib.inference.options.InferenceOptions`.
        device: where windows run and the output accumulates.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        on_window: called with ``(windows done, total windows)`` after each forward pass.
        cancel: when set, :class:`SegmentationCancelled` is raised before the next forward pass.
        stats: when given, receives ``network`` (seconds inside the predictor, device-synchronised) and
            ``windows`` (windows run).

    Returns:
        ``[1, len(channels), X, Y, Z]`` float32 logits on ``device``.
    """
    if image.ndim == 4:
        image = image[None]
    if image.ndim != 5 or image.shape[:2] != (1, 1):
        raise InferenceError(f"expected a [1, 1, X, Y, Z] image tensor, got shape {tuple(image.shape)}")
    if not channels:
        raise InferenceError("no channel selected")
    device = torch.device(device)
    roi = [int(roi_size)] * 3 if isinstance(roi_size, int) else [int(r) for r in roi_size]
    total = count_windows(image.shape[2:], roi, overlap)
    runner = _WindowRunner(predictor, channels, device, precision, total, on_window, cancel)
    if on_window is not None:
        on_window(0, total)
    weights = window_weight_map(blend, roi).to(device)
    try:
        with torch.inference_mode():
            return _blend_windows(image, roi, sw_batch_size, runner, overlap, blend, device, weights)
    finally:
        if stats is not None:
            stats["network"] = stats.get("network", 0.0) + runner.clock.total()
            stats["windows"] = stats.get("windows", 0.0) + runner.done


def _blend_windows(
    image: torch.Tensor,
    roi: list[int],
    sw_batch_size: int,
    runner: _WindowRunner,
    overlap: float,
    blend: str,
    device: torch.device,
    weights: torch.Tensor,
) -> torch.Tensor:
    """MONAI's sliding window with the given weight map, windows and output on ``device``."""
    return sliding_window_inference(
        image.to(device=device, dtype=torch.float32),
        roi,
        sw_batch_size,
        runner,
        overlap=overlap,
        mode="constant" if blend == "constant" else "gaussian",
        padding_mode="constant",
        cval=0.0,
        sw_device=device,
        device=device,
        roi_weight_map=weights[None, None],
    )
