"""A wall-time budget for a run (``--time-budget MINUTES``): the run ends on time on a slow machine.

The learning-rate schedule is planned over ``epochs x steps per epoch`` optimiser steps. With a budget it
follows whichever is further along, the steps taken or the clock: after every optimiser step, when the
share of the training time spent is ahead of the share of the schedule done, the schedule is stepped
on to the same share (those steps are skipped, not taken). Training ends when the schedule does, so a
run on a slow day takes fewer steps but still warms up, peaks and anneals to its floor, and the last
weights are the annealed ones. On a machine fast enough for the whole plan the clock never gets ahead,
and the run is the one it would be without a budget, step for step.

The clock starts when the run is built (data loading counts) and carries over a resume; the final
validation and checkpoint come after it. The training time is what the budget leaves after the
start-up (building the run, loading the data): the start-up is a fixed cost, not steps running late,
so it shortens every step's share instead of skipping the first steps of the warm-up. Progressive
resizing follows the schedule too: an epoch's image size is that of the epoch the schedule has
reached, so a short run keeps its last size's share.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from torch.optim.lr_scheduler import LRScheduler


class TimeBudget:
    """The clock of one run and the schedule's position in its phase (steps taken plus steps skipped)."""

    def __init__(self, minutes: float, total_steps: int, started: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``started``: the ``clock`` reading when the run began to be built (default: now)."""
        self.seconds = minutes * 60
        self.total_steps = total_steps  # schedule steps of the phase: epochs x optimiser steps per epoch
        self.position = 0  # schedule steps done in the phase, taken or skipped
        self.skipped = 0  # of them skipped to keep time
        self.spent_before = 0.0  # seconds spent before a resume
        self.setup = 0.0  # seconds spent before the first step: building the run, loading the data
        self.clock = clock
        self.started = clock() if started is None else started

    def spent(self) -> float:
        """Seconds of the budget spent so far, across resumes."""
        return self.spent_before + self.clock() - self.started

    def start_training(self, spent: float) -> None:
        """Training starts with ``spent`` seconds of the budget gone (rank 0's under DDP): they are the
        start-up. A resumed run keeps its first start-up; its own loading time is caught up like late
        steps."""
        if self.position == 0:
            self.setup = spent

    def catch_up(self, schedule: LRScheduler, spent: float) -> int:
        """After one optimiser step (already applied to ``schedule``): step the schedule on to the share
        of the training time ``spent`` (seconds of the budget; rank 0's under DDP, so every rank skips
        alike). Returns the steps skipped now."""
        self.position += 1
        training_time = self.seconds - self.setup
        share = (spent - self.setup) / training_time if training_time > 0 else 1.0
        target = min(self.total_steps, math.floor(share * self.total_steps))
        skip = max(0, target - self.position)
        for _ in range(skip):
            schedule.step()
        self.position += skip
        self.skipped += skip
        return skip

    @property
    def over(self) -> bool:
        """No optimiser step is left: the schedule has reached its end, or the run was resumed with its
        budget spent (``--epochs`` raised on a run that ended on time). Both are the same on every rank."""
        return self.position >= self.total_steps or self.spent_before >= self.seconds

    def epoch_reached(self, steps_per_epoch: int) -> int:
        """Epochs of the schedule done (for progressive resizing), counting skipped steps."""
        return self.position // max(1, steps_per_epoch)

    def state(self) -> dict[str, Any]:
        return {"spent_s": self.spent(), "setup_s": self.setup, "position": self.position, "skipped": self.skipped}

    def restore(self, state: dict[str, Any]) -> None:
        """A resumed run goes on from its checkpoint's clock and position; this process's clock keeps
        running from when it started building the run (loading the data again counts)."""
        self.spent_before = float(state["spent_s"])
        self.setup = float(state.get("setup_s", 0.0))  # older checkpoints counted no start-up
        self.position = int(state["position"])
        self.skipped = int(state["skipped"])

    def describe(self) -> str:
        return (f"time budget of {self.seconds / 60:g} min spent: {self.skipped} of the schedule's {self.total_steps} "
                f"optimiser steps were skipped to end on time")
