"""Run ``cnnlab train`` (argv as given) under torchrun, counting DDP's gradient all-reduces.

A test helper, not part of cnnlab: every DistributedDataParallel built gets a communication hook that
does DDP's own all-reduce and counts the rounds (one per ``bucket.is_last()``), and an optimizer hook
counts optimiser steps. Each rank writes ``{"allreduce_rounds": ..., "optimizer_steps": ...}`` to
``$COUNT_DIR/rank<R>.json``.
"""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook
from torch.optim.optimizer import register_optimizer_step_post_hook

from cnnlab.cli import main

counts = {"allreduce_rounds": 0, "optimizer_steps": 0}
original_init = torch.nn.parallel.DistributedDataParallel.__init__


def counting_hook(state, bucket):
    if bucket.is_last():
        counts["allreduce_rounds"] += 1
    return allreduce_hook(state, bucket)


def init_with_hook(self, *args, **kwargs):
    original_init(self, *args, **kwargs)
    self.register_comm_hook(None, counting_hook)


def count_step(optimizer, args, kwargs):
    counts["optimizer_steps"] += 1


torch.nn.parallel.DistributedDataParallel.__init__ = init_with_hook
register_optimizer_step_post_hook(count_step)
status = main(sys.argv[1:])
with open(os.path.join(os.environ["COUNT_DIR"], f"rank{dist.get_rank() if dist.is_initialized() else 0}.json"), "w") as f:
    json.dump(counts, f)
sys.exit(status)
