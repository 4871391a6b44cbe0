"""A loss that is NaN or infinite: stop the run (keeping the last good checkpoint), or skip the step.

The check is made once per optimiser step, on the window's summed loss (one device sync per step, not
per micro-batch); under DDP the ranks agree through one small all-reduce, so they skip or stop together.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from cnnlab.errors import UserError
from cnnlab.train.distributed import DistInfo


class NonFiniteLoss(UserError):
    """Training stopped at a NaN/Inf loss; the message names where and what was kept."""


class NonFiniteGuard:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # steps that may be skipped before the run stops (--skip-nonfinite)
        self.skipped = 0
        self._bad: torch.Tensor | None = None

    def observe(self, loss_sum: torch.Tensor) -> None:
        """One micro-batch's loss (no sync)."""
        bad = ~torch.isfinite(loss_sum.detach())
        self._bad = bad if self._bad is None else self._bad | bad

    def window_is_finite(self, info: DistInfo) -> bool:
        """Whether every loss of the window just ended was finite, on every rank; resets for the next."""
        bad, self._bad = self._bad, None
        if bad is None:
            return True
        flag = bad.float().reshape(1)
        if info.enabled:
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return not bool(flag.item())

    def skip_or_stop(self, where: str, kept: str) -> str:
        """Count a skipped step, or raise when more than ``limit`` were; returns the warning to log."""
        self.skipped += 1
        if self.skipped > self.limit:
            allowance = f" (after skipping {self.limit})" if self.limit else ""
            raise NonFiniteLoss(f"the loss is NaN or infinite at {where}{allowance}: training stopped, {kept}; lower "
                                "--lr, check the data, or pass --skip-nonfinite N to skip such steps")
        return f"warning: the loss is NaN or infinite at {where}: step skipped ({self.skipped} of --skip-nonfinite {self.limit})"
