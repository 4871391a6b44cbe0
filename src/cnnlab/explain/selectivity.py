"""Class selectivity of every convolutional unit, layer by layer (Morcos et al. 2018).

What is measured: for each conv layer, the post-activation output of its block (see
``layers.conv_units``), averaged over spatial positions, one number per channel ("unit") and image.
Per unit, the mean of that number over the images of each class gives the class means mu_1..mu_K, and

    selectivity = (mu_max - mu_rest) / (mu_max + mu_rest)

where mu_max is the largest class mean and mu_rest the mean of the other K-1. With ReLU outputs every
mu is >= 0, so the index lies in [0, 1]: 0 when all classes excite the unit equally, 1 when only one
class does. Class means are clipped at 0 first, which changes nothing for ReLU and keeps the index in
[0, 1] for activations with negative outputs (it then measures the positive part). A unit that is
silent for every class (mu_max + mu_rest = 0) gets index 0 and is counted as dead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.data.imageset import ImageSet
from cnnlab.data.normalize import Normalization
from cnnlab.explain.hooks import capture
from cnnlab.explain.layers import ConvUnits, conv_units
from cnnlab.data.batch import prepare

SELECTIVE = 0.5  # the threshold the per-layer "fraction of selective units" counts above
DEFINITION = ("selectivity index SI = (mu_max - mu_rest) / (mu_max + mu_rest), mu_max: the unit's highest "
              "class-mean activation, mu_rest: the mean of the other classes' (0: all classes alike, 1: one class only)")


@dataclass
class LayerSelectivity:
    units: ConvUnits
    activations: torch.Tensor  # images x channels: spatial mean of each unit on each image
    class_means: torch.Tensor  # channels x classes
    index: torch.Tensor  # channels: the selectivity index

    def summary(self) -> dict[str, float | int | str]:
        dead = self.class_means.sum(1) <= 0
        return {
            "layer": self.units.layer, "conv": self.units.conv, "depth": self.units.depth,
            "units": len(self.index), "median": float(self.index.median()), "mean": float(self.index.mean()),
            f"fraction_above_{SELECTIVE}": float((self.index > SELECTIVE).float().mean()),
            "max": float(self.index.max()), "dead_units": int(dead.sum()),
        }


def selectivity_index(class_means: torch.Tensor) -> torch.Tensor:
    """units x classes means -> units indices in [0, 1] (see the module docstring; 0 for dead units)."""
    mu = class_means.clamp_min(0)
    top = mu.max(1).values
    rest = (mu.sum(1) - top) / max(1, mu.shape[1] - 1)
    total = top + rest
    return torch.where(total > 0, (top - rest) / total.clamp_min(1e-30), torch.zeros_like(total))


@torch.no_grad()
def unit_activations(
    model: nn.Module, images: ImageSet, norm: Normalization, units: list[ConvUnits], device: torch.device,
    batch_size: int = 128,
) -> dict[str, torch.Tensor]:
    """Per unit layer: images x channels spatial means, on the CPU (one forward pass over the data)."""
    layers = [u.layer for u in units]
    out: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    with capture(model, layers) as cap:
        for i in range(0, len(images), batch_size):
            model(prepare(images.images[i : i + batch_size], norm, device))
            for name in layers:
                out[name].append(cap.activations[name].float().mean((2, 3)).cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}


def class_means(activations: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """images x channels, labels -> channels x classes means (0 for a class without images)."""
    sums = torch.zeros(num_classes, activations.shape[1], dtype=torch.float64)
    sums.index_add_(0, labels, activations.to(torch.float64))
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1).to(torch.float64)
    return (sums / counts[:, None]).T.float()


def measure_selectivity(
    model: nn.Module, images: ImageSet, norm: Normalization, image_size: int, device: torch.device,
    batch_size: int = 128,
) -> list[LayerSelectivity]:
    """Selectivity of every unit of every conv layer over ``images``, layers in the order they run."""
    units = conv_units(model, image_size)
    acts = unit_activations(model, images, norm, units, device, batch_size)
    result = []
    for u in units:
        means = class_means(acts[u.layer], images.labels, len(images.classes))
        result.append(LayerSelectivity(u, acts[u.layer], means, selectivity_index(means)))
    return result


def most_selective(layers: list[LayerSelectivity], per_layer: int) -> list[tuple[LayerSelectivity, int]]:
    """The ``per_layer`` most selective units of each layer, as (layer, channel) pairs."""
    return [(layer, int(c)) for layer in layers
            for c in layer.index.argsort(descending=True)[: min(per_layer, len(layer.index))]]


def selectivity_table(summaries: list[dict]) -> str:
    """``LayerSelectivity.summary()`` rows as a fixed-width text table, one line per layer."""
    width = max([5, *(len(str(s["layer"])) for s in summaries)])
    lines = [f"{'depth':>5}  {'layer':<{width}}  units  median   mean  >0.5   max   dead"]
    lines += [f"{s['depth']:>5}  {s['layer']:<{width}}  {s['units']:>5}  {s['median']:.3f}  {s['mean']:.3f}  "
              f"{s['fraction_above_0.5']:.2f}  {s['max']:.2f}  {s['dead_units']:>5}" for s in summaries]
    return "\n".join(lines)
