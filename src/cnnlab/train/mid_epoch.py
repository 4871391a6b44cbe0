"""Checkpoints inside an epoch: enough to continue from the very micro-batch where the run stopped.

An epoch is fixed by its sample order and the augmentation seed of each micro-batch, both drawn at its
start. ``EpochProgress`` keeps them, the index of the next micro-batch, and the training-metric inputs
seen so far (each micro-batch's predictions, labels and loss sum), so a resumed epoch replays the very
same metric updates and ends with the same history row as an uninterrupted one. The model, optimiser,
schedule and RNG states are the checkpoint's usual ones, taken at the end of an accumulation window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from cnnlab.metrics import EpochMetrics


@dataclass
class EpochProgress:
    order: torch.Tensor  # sample indices of the epoch, as drawn at its start
    seeds: list[int]  # augmentation seed of each micro-batch
    next_batch: int = 0  # first micro-batch not yet trained on
    preds: list[torch.Tensor] = field(default_factory=list)  # per micro-batch so far
    targets: list[torch.Tensor] = field(default_factory=list)
    loss_sums: list[torch.Tensor] = field(default_factory=list)

    def record(self, index: int, logits: torch.Tensor, targets: torch.Tensor, loss_sum: torch.Tensor) -> None:
        """Micro-batch ``index`` is done (its metric inputs kept for a checkpoint)."""
        self.next_batch = index + 1
        self.preds.append(logits.detach().argmax(dim=1))
        self.targets.append(targets)
        self.loss_sums.append(loss_sum.detach().float())

    def state(self) -> dict[str, Any]:
        """Plain tensors and numbers (a weights-only checkpoint can hold them)."""
        return {"order": self.order.cpu(), "seeds": list(self.seeds), "next_batch": self.next_batch,
                "preds": [p.cpu() for p in self.preds], "targets": [t.cpu() for t in self.targets],
                "loss_sums": [l.cpu() for l in self.loss_sums]}

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device) -> EpochProgress:
        return cls(state["order"], list(state["seeds"]), int(state["next_batch"]),
                   [p.to(device) for p in state["preds"]], [t.to(device) for t in state["targets"]],
                   [l.to(device) for l in state["loss_sums"]])

    def metrics(self, num_classes: int, device: torch.device) -> EpochMetrics:
        """Training metrics of the micro-batches done, updated exactly as they were the first time."""
        metrics = EpochMetrics(num_classes, device)
        for p, t, l in zip(self.preds, self.targets, self.loss_sums):
            metrics.update(torch.nn.functional.one_hot(p, num_classes).float(), t, l)
        return metrics
