"""Optimisers and learning-rate schedules. Schedules count optimiser steps, not micro-batches."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LRScheduler

from cnnlab.runs.config import TrainConfig


def build_optimizer(params: Iterable, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``params`` may be parameters or parameter groups (dicts with their own ``lr``)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_schedule(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int, epochs: int) -> LRScheduler:
    total = max(1, steps_per_epoch * epochs)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_epochs * steps_per_epoch, gamma=cfg.step_gamma)
    if cfg.schedule == "onecycle":
        max_lr = [g["lr"] for g in opt.param_groups]
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
