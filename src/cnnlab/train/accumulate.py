"""Exact gradient accumulation, in one place.

An epoch is cut into micro-batches of ``batch_size`` samples, and consecutive groups of ``accumulate``
micro-batches form a *window*: one optimiser step. For the step's gradient to be the mean of the
per-sample gradients over exactly the samples in the window, each micro-batch's loss is the *sum* of
its per-sample losses divided by the number of samples in the whole window -- not the usual
"mean per micro-batch / K", which is wrong when the last micro-batch is short or the last window has
fewer than K micro-batches. The last window of an epoch is always flushed (stepped), so no window
mixes samples from two epochs.

Under DistributedDataParallel each global micro-batch of ``batch_size * world_size`` samples is dealt
across ranks; DDP averages gradients over ranks, so each rank scales its loss sum by
``world_size / window_samples`` (window_samples counted over all ranks), and all but the last
micro-batch of a window run under ``no_sync`` so gradients are all-reduced once per step.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MicroBatch:
    indices: torch.Tensor  # this rank's sample indices
    loss_scale: float  # multiply the summed per-sample loss by this before backward
    window_samples: int  # samples in this micro-batch's window, all ranks together
    ends_window: bool  # step the optimiser after this micro-batch's backward


def plan_epoch(
    order: torch.Tensor, batch_size: int, accumulate: int, rank: int = 0, world_size: int = 1
) -> Iterator[MicroBatch]:
    """Cut ``order`` (a permutation of sample indices) into micro-batches and windows."""
    global_batch = batch_size * world_size
    n = len(order)
    starts = list(range(0, n, global_batch))
    if world_size > 1 and len(starts) > 1 and n - starts[-1] < world_size:
        starts.pop()  # a tail too small to give every rank a sample joins the previous micro-batch
    bounds = [(s, starts[i + 1] if i + 1 < len(starts) else n) for i, s in enumerate(starts)]
    for w in range(0, len(bounds), accumulate):
        window = bounds[w : w + accumulate]
        window_samples = sum(e - s for s, e in window)
        for j, (s, e) in enumerate(window):
            yield MicroBatch(order[s:e][rank::world_size], world_size / window_samples, window_samples,
                             j == len(window) - 1)


def steps_per_epoch(n: int, batch_size: int, accumulate: int, world_size: int = 1) -> int:
    """Optimiser steps in one epoch of ``n`` samples (what LR schedules count), read off the plan itself."""
    return max(1, sum(mb.ends_window for mb in plan_epoch(torch.arange(n), batch_size, accumulate, 0, world_size)))
