"""Skip optimizer steps whose loss or gradients are not finite, count them, stop after too many in a row.

The official code (fp32, no guard) applies a NaN step, after which every weight is NaN and training goes
on silently. Here such a step is skipped (the weights, the optimizer state and the normalisation layers'
running statistics stay as they were) and counted per epoch and in total; after
``train.max_nonfinite_steps`` bad steps in a row training stops with :class:`NonFiniteTrainingError`.
Under DDP the processes agree: a step is skipped everywhere when it is bad on any of them, so the
replicas never diverge.

With fp16 the GradScaler already skips steps whose *scaled* gradients overflow (a normal part of finding
the scale, not counted here); the guard then only checks the loss.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from .distributed import DistInfo, any_across


class NonFiniteTrainingError(RuntimeError):
    """Too many optimizer steps in a row had a non-finite loss or gradient."""


def gradients_finite(parameters: Iterable[torch.nn.Parameter]) -> bool:
    """True when every gradient of ``parameters`` is finite (parameters without a gradient are ignored).

    One float64 sum per tensor (no temporary the size of the gradients): a NaN or infinity makes the sum
    non-finite, and float32 values cannot overflow a float64 sum.
    """
    sums = [p.grad.detach().sum(dtype=torch.float64) for p in parameters if p.grad is not None]
    return bool(torch.isfinite(torch.stack(sums).sum())) if sums else True


class NonFiniteGuard:
    """Decides, once per optimizer step, whether the accumulated gradients may be applied.

    Args:
        max_consecutive: stop after this many bad steps in a row (0: never stop, only skip).
        dist: this process's place in the job (the decision is agreed over all processes).
        check_gradients: also check the gradients (off for fp16, whose GradScaler does it).
    """

    def __init__(self, max_consecutive: int, dist: DistInfo | None = None, check_gradients: bool = True):
        self.max_consecutive = max_consecutive
        self.dist = dist or DistInfo()
        self.check_gradients = check_gradients
        self.total = 0  # skipped steps over the whole run
        self.in_epoch = 0  # ... in the current epoch
        self.consecutive = 0
        self._bad_loss: float | None = None  # a non-finite loss seen since the last step decision
        self._saved_statistics: list[tuple[torch.Tensor, torch.Tensor]] = []

    def begin_step(self, model: torch.nn.Module) -> None:
        """Remember the running statistics of ``model``'s normalisation layers before the step's first
        forward pass (a skipped step restores them: a NaN forward would otherwise poison them)."""
        self._saved_statistics = [
            (buffer, buffer.detach().clone())
            for module in model.modules()
            if isinstance(module, torch.nn.modules.batchnorm._NormBase)
            for buffer in module.buffers(recurse=False)
        ]

    def note_loss(self, loss: float) -> None:
        """Record one micro-batch's loss value (call it for every micro-batch of a step)."""
        if not math.isfinite(loss) and self._bad_loss is None:
            self._bad_loss = loss

    def should_skip(self, parameters: Iterable[torch.nn.Parameter], epoch: int, step: int) -> bool:
        """True if the pending step must be skipped; counts it.

        Args:
            parameters: the model's parameters, after the backward passes of this step.
            epoch, step: where training is (0-based), for the error message.

        Raises:
            NonFiniteTrainingError: this is the ``max_consecutive``-th bad step in a row.
        """
        bad_loss, self._bad_loss = self._bad_loss, None
        bad_gradients = bad_loss is None and self.check_gradients and not gradients_finite(parameters)
        local_bad = bad_loss is not None or bad_gradients
        saved, self._saved_statistics = self._saved_statistics, []
        if not any_across(local_bad, self.dist):
            self.consecutive = 0
            return False
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        self.total += 1
        self.in_epoch += 1
        self.consecutive += 1
        if self.max_consecutive and self.consecutive >= self.max_consecutive:
            if bad_loss is not None:
                what = f"loss {bad_loss} on rank {self.dist.rank}"
            elif bad_gradients:
                what = f"non-finite gradients on rank {self.dist.rank}"
            else:
                what = "non-finite on another rank"
            raise NonFiniteTrainingError(
                f"{self.consecutive} optimizer step(s) in a row had a non-finite loss or gradient (last: "
                f"epoch {epoch + 1}, step {step}, {what}); all were skipped, so the weights are those of the "
                "last finite step, but training cannot go on. Try: a lower train.lr, train.grad_clip (e.g. "
                "1.0), train.amp: off if you use bf16/fp16, and check the data of the datasets sampled at "
                "that point (prepare --verify). Raise train.max_nonfinite_steps (0: never stop) only if the "
                "bad steps are known to be rare."
            )
        return True

    def end_epoch(self) -> int:
        """The number of steps skipped in the epoch that just ended (and start counting the next one)."""
        skipped, self.in_epoch = self.in_epoch, 0
        return skipped

    def state_dict(self) -> dict[str, Any]:
        return {"total": self.total, "in_epoch": self.in_epoch, "consecutive": self.consecutive}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.total = int(state.get("total", 0))
        self.in_epoch = int(state.get("in_epoch", 0))
        self.consecutive = int(state.get("consecutive", 0))
