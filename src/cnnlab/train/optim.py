"""Optimisers and learning-rate schedules, each a registry of builders keyed by its config name: the
one list of choices (``--optimizer`` and ``--schedule`` take theirs from here). Schedules count
optimiser steps, not micro-batches."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from cnnlab.errors import UserError
from cnnlab.runs.config import TrainConfig

# (params or parameter groups, config) -> optimiser
OPTIMIZERS: dict[str, Callable[[Iterable, TrainConfig], torch.optim.Optimizer]] = {
    "sgd": lambda params, cfg: torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                               nesterov=cfg.nesterov and cfg.momentum > 0,
                                               weight_decay=cfg.weight_decay),
    "adam": lambda params, cfg: torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
    "adamw": lambda params, cfg: torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
}

# (optimiser, config, optimiser steps per epoch, total optimiser steps) -> schedule
SCHEDULES: dict[str, Callable[[torch.optim.Optimizer, TrainConfig, int, int], LRScheduler]] = {
    "none": lambda opt, cfg, per_epoch, total: torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0),
    "step": lambda opt, cfg, per_epoch, total: torch.optim.lr_scheduler.StepLR(
        opt, step_size=cfg.step_epochs * per_epoch, gamma=cfg.step_gamma),
    "cosine": lambda opt, cfg, per_epoch, total: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
    "onecycle": lambda opt, cfg, per_epoch, total: torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=total),
}


def check_choices(cfg: TrainConfig) -> TrainConfig:
    """The config's optimiser and schedule are registered (a UserError naming the choices if not);
    called before anything is built, so a typo in a YAML file costs no data loading."""
    for flag, name, registry in (("optimizer", cfg.optimizer, OPTIMIZERS), ("schedule", cfg.schedule, SCHEDULES)):
        if name not in registry:
            raise UserError(f"unknown {flag} '{name}': choose one of {', '.join(registry)}")
    return cfg


def build_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``params`` may be parameters or parameter groups (dicts with their own ``lr``)."""
    return OPTIMIZERS[check_choices(cfg).optimizer](params, cfg)


def build_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, epochs: int) -> LRScheduler:
    return SCHEDULES[check_choices(cfg).schedule](opt, cfg, steps_per_epoch, max(1, steps_per_epoch * epochs))
