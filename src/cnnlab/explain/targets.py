"""What an explanation explains: a scalar score per image that gradients are taken of.

Grad-CAM asks "which pixels raise this score?", a class-model image asks "which image maximises it?".
Both take the same target objects, in the style of pytorch-grad-cam: ``ClassTarget(k)`` scores the
logit of class k, ``FilterTarget(layer, k)`` the mean activation of filter (channel) k of a layer,
which pytorch-grad-cam cannot target. A target lists the layers it reads so the caller can capture
them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch

from cnnlab.errors import UserError


class Target(Protocol):
    layers: tuple[str, ...]

    def __call__(self, logits: torch.Tensor, activations: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """One score per image (shape N)."""
        ...

    def describe(self, classes: Sequence[str]) -> str:
        """A short name for file names and titles."""
        ...


@dataclass(frozen=True)
class ClassTarget:
    """The logit (pre-softmax score) of class ``index``, as in the Grad-CAM paper: the softmax would
    also reward lowering the other classes."""

    index: int
    layers: tuple[str, ...] = ()

    def __call__(self, logits: torch.Tensor, activations: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if not 0 <= self.index < logits.shape[1]:
            raise UserError(f"class index {self.index} is out of range: the model has {logits.shape[1]} classes")
        return logits[:, self.index]

    def describe(self, classes: Sequence[str]) -> str:
        return classes[self.index] if self.index < len(classes) else f"class{self.index}"


@dataclass(frozen=True)
class FilterTarget:
    """The mean activation of filter ``index`` of ``layer`` over all spatial positions."""

    layer: str
    index: int

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, logits: torch.Tensor, activations: Mapping[str, torch.Tensor]) -> torch.Tensor:
        a = activations[self.layer]
        if a.dim() < 2 or not 0 <= self.index < a.shape[1]:
            channels = a.shape[1] if a.dim() >= 2 else 0
            raise UserError(f"layer '{self.layer}' has {channels} filters: pick a filter in 0..{channels - 1}")
        return a[:, self.index].flatten(1).mean(1)

    def describe(self, classes: Sequence[str]) -> str:
        return f"{self.layer}-filter{self.index}"


def target_layers(targets: Target | Sequence[Target]) -> list[str]:
    """The layers the targets read, each once."""
    many = targets if isinstance(targets, Sequence) else [targets]
    return list(dict.fromkeys(layer for t in many for layer in t.layers))


def target_scores(
    targets: Target | Sequence[Target], logits: torch.Tensor, activations: Mapping[str, torch.Tensor]
) -> torch.Tensor:
    """Score of each image: one target for the whole batch, or one target per image."""
    if not isinstance(targets, Sequence):
        return targets(logits, activations)
    if len(targets) != len(logits):
        raise ValueError(f"{len(targets)} targets for {len(logits)} images: give one per image, or a single one")
    groups: dict[Target, list[int]] = {}
    for i, t in enumerate(targets):
        groups.setdefault(t, []).append(i)
    parts = [t(logits[idx], {k: v[idx] for k, v in activations.items()}) for t, idx in groups.items()]
    order = torch.tensor([i for idx in groups.values() for i in idx], device=logits.device)
    return torch.cat(parts)[torch.argsort(order)]
