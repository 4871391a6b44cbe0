"""Which layers a model has, in the order they run, and which of them hold its convolutional "units".

A probe forward pass on one blank image records every leaf module call: its name, type and output
shape. From that order each convolution is paired with the activation that follows it; the
post-activation output of a conv block is where explanations look by default (Grad-CAM's default
layer, the units measured for selectivity), because it is what the next block reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.errors import UserError

ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Hardswish, nn.Hardtanh, nn.Tanh, nn.Sigmoid, nn.Softplus,
)


@dataclass(frozen=True)
class LayerCall:
    """One call of a leaf module during the probe pass."""

    name: str
    kind: str  # the module's class name
    shape: tuple[int, ...]  # output shape without the batch dimension
    parameters: int


@dataclass(frozen=True)
class ConvUnits:
    """The channels ("units") of one convolution, read at ``layer``: the activation that follows the
    convolution, or the convolution itself when no activation follows it before the next one."""

    conv: str
    layer: str
    channels: int
    depth: int  # 1 for the first convolution, in the order they run
    size: tuple[int, int]  # height and width of the maps at the probe's input size


def probe_calls(model: nn.Module, image_size: int) -> list[LayerCall]:
    """Every leaf module call of one forward pass on a blank ``image_size`` image, in order (eval mode)."""
    calls: list[LayerCall] = []
    leaves = [(n, m) for n, m in model.named_modules() if n and not any(True for _ in m.children())]

    def hook_for(name: str, module: nn.Module):  # type: ignore[no-untyped-def]
        params = sum(p.numel() for p in module.parameters(recurse=False))

        def hook(_m: nn.Module, _i: tuple, out: object) -> None:
            shape = tuple(out.shape[1:]) if isinstance(out, torch.Tensor) else ()
            calls.append(LayerCall(name, type(module).__name__, shape, params))

        return hook

    handles = [m.register_forward_hook(hook_for(n, m)) for n, m in leaves]
    modes = {m: m.training for m in model.modules()}
    try:
        model.eval()
        p = next(model.parameters(), None)
        x = torch.zeros(1, 3, image_size, image_size, device=p.device if p is not None else "cpu")
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
    return calls


def conv_units(model: nn.Module, image_size: int) -> list[ConvUnits]:
    """Each 2-D convolution with the layer its units are read at, in the order they run.

    The reading point is the first activation called after the convolution (and before the next one)
    whose output has the same number of channels. A module that runs twice (a ResNet block's shared
    ReLU) is listed once: capture keeps its last call, the block's output. A 1x1 convolution with a
    1x1 output (squeeze-and-excitation gates, 1x1 heads) is a fully connected layer in disguise, with
    no spatial units, and is left out.
    """
    modules = dict(model.named_modules())
    calls = probe_calls(model, image_size)
    units: list[ConvUnits] = []
    seen: set[str] = set()
    for i, call in enumerate(calls):
        if not isinstance(modules[call.name], nn.Conv2d) or _is_fully_connected(modules[call.name], call):
            continue
        layer = call.name
        for later in calls[i + 1:]:
            if isinstance(modules[later.name], nn.Conv2d):
                break
            if isinstance(modules[later.name], ACTIVATION_TYPES) and later.shape[:1] == call.shape[:1]:
                layer = later.name
                break
        if layer not in seen:
            seen.add(layer)
            units.append(ConvUnits(call.name, layer, call.shape[0], len(units) + 1, call.shape[1:3]))
    return units


def _is_fully_connected(conv: nn.Conv2d, call: LayerCall) -> bool:
    return tuple(conv.kernel_size) == (1, 1) and call.shape[1:] == (1, 1)


MIN_CAM_SIDE = 4


def default_cam_layer(model: nn.Module, image_size: int) -> str:
    """The usual Grad-CAM layer, the post-activation output of the last convolution (the most semantic
    one still spatial), unless its maps are smaller than 4x4: on the small images cnnlab is made for the
    last block of a deep network is often 2x2 or 1x1, which cannot show where anything is, so the
    deepest conv layer with maps of at least 4x4 is taken instead."""
    units = conv_units(model, image_size)
    if not units:
        raise UserError("the model has no 2-D convolution: pass --layer NAME (see `cnnlab explain layers RUN`)")
    wide = [u for u in units if min(u.size) >= MIN_CAM_SIDE]
    return (wide or units)[-1].layer
