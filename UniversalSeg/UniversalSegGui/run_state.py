"""The Segment / Cancel state machine of the module panel (pure Python, no Qt)."""

from __future__ import annotations

import enum
from collections.abc import Callable


class RunState(enum.Enum):
    """Where a segmentation run is."""

    IDLE = "idle"
    PREPARING = "preparing"  # dependencies, weights, exporting the input
    RUNNING = "running"  # the engine process runs
    CANCELLING = "cancelling"  # cancel was asked, waiting for the process to end
    IMPORTING = "importing"  # loading the result into the scene


#: Allowed transitions; anything else is a programming error.
TRANSITIONS: dict[RunState, frozenset[RunState]] = {
    RunState.IDLE: frozenset({RunState.PREPARING, RunState.RUNNING}),
    RunState.PREPARING: frozenset({RunState.RUNNING, RunState.IDLE, RunState.CANCELLING}),
    RunState.RUNNING: frozenset({RunState.CANCELLING, RunState.IMPORTING, RunState.IDLE}),
    RunState.CANCELLING: frozenset({RunState.IDLE}),
    RunState.IMPORTING: frozenset({RunState.IDLE}),
}


class RunStateMachine:
    """Tracks the run state; the button reads "Segment" when idle and "Cancel" otherwise."""

    def __init__(self) -> None:
        self.state = RunState.IDLE
        #: Callables run with the new state after each change.
        self.listeners: list[Callable[[RunState], None]] = []

    def go(self, new_state: RunState) -> None:
        """Move to ``new_state``; raises ``RuntimeError`` for a transition that makes no sense."""
        if new_state == self.state:
            return
        if new_state not in TRANSITIONS[self.state]:
            raise RuntimeError(f"Cannot go from {self.state.value} to {new_state.value}")
        self.state = new_state
        for listener in list(self.listeners):
            listener(new_state)

    @property
    def busy(self) -> bool:
        return self.state != RunState.IDLE

    @property
    def can_cancel(self) -> bool:
        return self.state in (RunState.PREPARING, RunState.RUNNING)

    def button_text(self, translate: Callable[[str], str] = str) -> str:
        if self.state == RunState.IDLE:
            return translate("Segment")
        if self.state == RunState.CANCELLING:
            return translate("Cancelling...")
        if self.state == RunState.IMPORTING:
            return translate("Importing...")
        return translate("Cancel")

    def button_enabled(self, inputs_ready: bool) -> bool:
        """Segment needs inputs; Cancel is always available while it can act."""
        return inputs_ready if self.state == RunState.IDLE else self.can_cancel
