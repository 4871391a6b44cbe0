"""Exponential moving average (EMA) of the weights, evaluated and checkpointed next to the raw weights.

The average starts at the weights training starts from and follows every optimiser step:
``ema = d * ema + (1 - d) * weights`` with ``d = min(decay, (1 + k) / (10 + k))`` at the k-th update
(the warm-up of TensorFlow's ExponentialMovingAverage with ``num_updates``), so in a short run the
starting weights, a random head for instance, do not linger in the average. BatchNorm running
statistics are averaged the same way (``use_buffers``; integer counters are copied), so the averaged
model needs no extra pass over the data before it is evaluated. Built on
``torch.optim.swa_utils.AveragedModel``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self._averaged = AveragedModel(model, multi_avg_fn=_warmup_ema(decay), use_buffers=True)
        self._averaged.update_parameters(model)  # the first update copies: the average starts at these weights
        self._averaged.eval()

    @property
    def model(self) -> nn.Module:
        """The averaged network, same class and state_dict keys as the trained one."""
        return self._averaged.module

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Call after every optimiser step."""
        self._averaged.update_parameters(model)

    @property
    def updates(self) -> int:
        """Updates so far, the starting copy included: the warm-up depends on it, so resume restores it."""
        return int(self._averaged.n_averaged)

    @updates.setter
    def updates(self, n: int) -> None:
        self._averaged.n_averaged.fill_(n)

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state)


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of the ``updates``-th update (1 for the first after the starting copy)."""
    return min(decay, (1 + updates) / (10 + updates))


def _warmup_ema(decay: float):  # type: ignore[no-untyped-def]
    """An ``AveragedModel`` multi_avg_fn: one dtype group of tensors at a time; ``n_averaged`` counts the
    updates so far (1 after the starting copy)."""

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if not torch.is_floating_point(averaged[0]):
            torch._foreach_copy_(averaged, current)  # counters such as BatchNorm's num_batches_tracked
            return
        torch._foreach_lerp_(averaged, current, 1 - warmup_decay(decay, int(n_averaged)))

    return update
