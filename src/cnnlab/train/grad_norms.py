"""``--log-grad-norms N``: the L2 norm of each layer's gradient, its weights and its update, every N steps.

A callback: ``on_before_step`` sees the gradient of the whole accumulation window, after DDP's
all-reduce (so it is the gradient the optimiser applies, the same on every rank, and only the main
process -- where the default callbacks live -- computes and writes it); ``on_step_end`` measures the
update the optimiser actually made (with momentum, Adam or weight decay it is not ``lr * grad``).
Norms are computed in float32 whatever the gradients' dtype (bf16-safe). Without the flag the callback
does not exist: no cost at all. Written to ``RUN/grad_norms.csv`` after every epoch and drawn as
``RUN/grad_flow.png`` when training ends; see ``cnnlab.runs.grad_flow`` for the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from cnnlab import atomic
from cnnlab.runs.grad_flow import GRAD_FLOW_FIGURE, GRAD_NORMS_FILE, grad_flow_figure, read_grad_norms
from cnnlab.runs.plots import save_figure
from cnnlab.train.callbacks import Callback, StepInfo

if TYPE_CHECKING:
    from cnnlab.train.trainer import Trainer


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # module class, e.g. Conv2d, BatchNorm2d, Linear
    depth: int  # weight layers (parameters with 2 or more dimensions) from the input up to this one
    weight_layer: bool
    params: tuple[nn.Parameter, ...]  # the module's own parameters


def parameterised_layers(model: nn.Module) -> list[Layer]:
    """Every module that owns parameters, in registration order (the forward order of sequential models)."""
    layers, depth = [], 0
    for name, module in model.named_modules():
        params = tuple(module.parameters(recurse=False))
        if not params:
            continue
        weight_layer = any(p.ndim >= 2 for p in params)
        depth += weight_layer
        layers.append(Layer(name or type(module).__name__, type(module).__name__, depth, weight_layer, params))
    return layers


def layer_norms(groups: Sequence[Sequence[torch.Tensor]]) -> list[float]:
    """The L2 norm of each group of tensors taken together, in float32, read back in one transfer."""
    per_group = [torch.stack([torch.linalg.vector_norm(t, dtype=torch.float32) for t in ts]).square().sum().sqrt()
                 for ts in groups]
    return torch.stack(per_group).tolist() if per_group else []


class GradNorms(Callback):
    def __init__(self, every: int) -> None:
        self.every = every
        self.rows: list[dict] = []
        self.layers: list[Layer] = []
        self._pending: tuple[list[Layer], list[torch.Tensor], list[dict]] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        self.layers = parameterised_layers(trainer.model)
        # Resuming: keep what was logged up to the checkpoint, drop steps an interrupted epoch logged after it.
        self.rows = [r for r in read_grad_norms(trainer.run_dir) if r["step"] <= trainer.global_step]

    def on_before_step(self, trainer: Trainer, step: StepInfo) -> None:
        if (step.step - 1) % self.every:
            return
        layers = [la for la in self.layers if all(p.grad is not None for p in la.params)]  # frozen layers have none
        grads = layer_norms([[p.grad for p in la.params] for la in layers])  # type: ignore[misc]
        weights = layer_norms([la.params for la in layers])
        rows = [{"step": step.step, "epoch": step.epoch, "layer": la.name, "kind": la.kind, "depth": la.depth,
                 "weight_layer": int(la.weight_layer), "grad_norm": g, "weight_norm": w}
                for la, g, w in zip(layers, grads, weights)]
        before = [p.detach().clone() for la in layers for p in la.params]
        self._pending = (layers, before, rows)

    def on_step_end(self, trainer: Trainer, step: StepInfo) -> None:
        if self._pending is None:
            return
        layers, before, rows = self._pending
        self._pending = None
        old = iter(before)
        updates = layer_norms([[p.detach() - next(old) for p in la.params] for la in layers])
        for row, update in zip(rows, updates):
            row["update_ratio"] = update / row["weight_norm"] if row["weight_norm"] > 0 else float("nan")
        self.rows.extend(rows)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        atomic.write_csv(trainer.run_dir / GRAD_NORMS_FILE, self.rows)

    def on_fit_end(self, trainer: Trainer) -> None:
        """The figure once, at the end: drawing it costs about as much as a small epoch on a CPU."""
        if self.rows:
            save_figure(grad_flow_figure(self.rows, f"{trainer.cfg.model}: per-layer gradient norms"),
                        trainer.run_dir / GRAD_FLOW_FIGURE)
