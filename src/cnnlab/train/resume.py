"""Resuming a run: the same run (data, classes, model) and a schedule for the epochs now asked for.

``--resume RUN --epochs N`` may change the length of the run, and so the plan of a schedule whose shape
depends on it. The rule, per schedule (phase = the fine-tuning phase the run is in, the whole run
without ``--freeze-epochs``):

- ``step`` and ``none`` do not depend on the length: the saved schedule continues as it was.
- ``cosine`` is rebuilt for the phase's new number of steps and advanced to the steps already taken:
  from here on the learning rate is exactly that of a run planned for N epochs from the start.
- ``onecycle`` cannot do that without a jump (a finished cycle is at its floor, a longer plan would be
  mid-way), so the remaining steps become one more cycle that starts from the rate the run reached:
  a cosine warm-up to the peak over the first ``ONECYCLE_PCT_START`` of them, then a cosine anneal to
  one-cycle's floor (peak / (div_factor x final_div_factor)) at the last step. No jump, and the rate
  ends at its floor.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler

from cnnlab.errors import UserError
from cnnlab.runs.config import TrainConfig
from cnnlab.train.optim import build_schedule

ONECYCLE_PCT_START = 0.3  # torch's OneCycleLR default, used by build_schedule


class CycleRest:
    """LR factor (of the peak) for the rest of a one-cycle phase: warm up from ``start`` to 1, then
    anneal to ``floor``, over ``steps`` steps. A plain object, so LambdaLR's state_dict saves it."""

    def __init__(self, start: float = 1.0, floor: float = 0.0, steps: int = 1, phase_step: int = 0) -> None:
        self.start, self.floor, self.steps, self.phase_step = start, floor, steps, phase_step

    def __call__(self, k: int) -> float:
        k = min(k, self.steps)
        warm = max(1, round(ONECYCLE_PCT_START * self.steps))
        if k < warm:
            return self.start + (1 - self.start) * (1 - math.cos(math.pi * k / warm)) / 2
        rest = max(1, self.steps - warm)
        return self.floor + (1 - self.floor) * (1 + math.cos(math.pi * (k - warm) / rest)) / 2


def _planned_steps(state: dict[str, Any]) -> int | None:
    """Steps of the phase a saved schedule was planned for; None if its shape does not depend on it."""
    if "T_max" in state:
        return int(state["T_max"])
    if "total_steps" in state:
        return int(state["total_steps"])
    rests = [f for f in state.get("lr_lambdas", []) if isinstance(f, dict) and "phase_step" in f]
    if rests:
        return int(rests[0]["phase_step"] + rests[0]["steps"])
    return None


def _steps_taken(state: dict[str, Any]) -> int:
    """Optimiser steps taken in this phase by a saved schedule."""
    rests = [f for f in state.get("lr_lambdas", []) if isinstance(f, dict) and "phase_step" in f]
    return int(state["last_epoch"]) + (int(rests[0]["phase_step"]) if rests else 0)


def resumed_schedule(fresh: LRScheduler, saved: dict[str, Any], optimizer: torch.optim.Optimizer,
                     cfg: TrainConfig, steps_per_epoch: int, phase_epochs: int) -> LRScheduler:
    """The schedule to continue with: ``fresh`` (built for the current plan, before the optimiser state
    was loaded) with the saved state, or a rebuilt one when the phase's length changed (module doc)."""
    total = max(1, steps_per_epoch * phase_epochs)
    planned, done = _planned_steps(saved), _steps_taken(saved)
    lrs = list(saved["_last_lr"])  # the rates the run had reached (building a schedule overwrites the groups')
    if planned is None or planned == total:
        schedule = _with_saved_shape(fresh, saved, optimizer)
        schedule.load_state_dict(saved)
        for g, lr in zip(optimizer.param_groups, lrs):
            g["lr"] = lr
        return schedule
    if done >= total:
        raise UserError(f"the run has taken {done} optimiser steps of this phase, as many as {phase_epochs} epochs "
                        "hold: pass a larger --epochs")
    if cfg.schedule == "onecycle":
        return _one_more_cycle(optimizer, lrs, done, total)
    for g in optimizer.param_groups:  # replay the new plan from its start: the same numbers as a fresh run
        g["lr"] = g["initial_lr"]
    schedule = build_schedule(optimizer, cfg, steps_per_epoch, phase_epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "scheduler.step() before optimizer.step()": on purpose
        for _ in range(done):
            schedule.step()
    return schedule


def _with_saved_shape(fresh: LRScheduler, saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> LRScheduler:
    """A run already extended under one-cycle saved a LambdaLR of ``CycleRest``: the same again."""
    if isinstance(fresh, LambdaLR) or _planned_steps(saved) is None or "lr_lambdas" not in saved:
        return fresh
    for g in optimizer.param_groups:
        g["initial_lr"] = g["max_lr"]
    return LambdaLR(optimizer, [CycleRest() for _ in optimizer.param_groups])


def _one_more_cycle(optimizer: torch.optim.Optimizer, lrs: list[float], done: int, total: int) -> LambdaLR:
    rests = []
    for g, lr in zip(optimizer.param_groups, lrs):
        g["initial_lr"] = g["max_lr"]  # LambdaLR's base: the peak; OneCycleLR keeps max_lr and min_lr per group
        rests.append(CycleRest(start=lr / g["max_lr"], floor=g["min_lr"] / g["max_lr"], steps=total - done,
                               phase_step=done))
    return LambdaLR(optimizer, rests)


def check_same_run(ckpt: dict[str, Any], run_dir: Any, classes: list[str], train_names: list[str],
                   saved_train_names: list[str] | None, model: torch.nn.Module) -> None:
    """Refuse to continue a run on other data, classes or model, naming the difference."""
    if list(ckpt["classes"]) != list(classes):
        gone = [c for c in ckpt["classes"] if c not in classes]
        new = [c for c in classes if c not in ckpt["classes"]]
        what = (f"gone: {', '.join(gone)}" if gone else "") + ("; " if gone and new else "") + (
            f"new: {', '.join(new)}" if new else "")
        raise UserError(f"the classes changed since {run_dir} was trained ({what or 'other order'}): resume with the "
                        "same data, or start a new run")
    if saved_train_names is not None and saved_train_names != train_names:
        gone = sorted(set(saved_train_names) - set(train_names))
        new = sorted(set(train_names) - set(saved_train_names))
        example = f"e.g. '{(gone or new)[0]}' {'is gone' if gone else 'is new'}" if gone or new else "in another order"
        raise UserError(f"the training images changed since {run_dir} was trained ({len(gone)} gone, {len(new)} new, "
                        f"{example}): resume with the same data, or start a new run")
    own = model.state_dict()
    saved = ckpt["model"]
    for k in list(saved) + list(own):
        if k not in own or k not in saved or own[k].shape != saved[k].shape:
            where = ("only in the checkpoint" if k not in own else "only in the model built now" if k not in saved
                     else f"{tuple(saved[k].shape)} in the checkpoint, {tuple(own[k].shape)} now")
            raise UserError(f"the model changed since {run_dir} was trained ({k}: {where}): resume with the same "
                            "model, or start a new run")
