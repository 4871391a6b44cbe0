"""Reading what happens inside a model: the outputs of named layers and the gradients that reach them.

``capture`` is the one way every explanation looks inside a network. It is a context manager so that
its hooks are removed and the model's train/eval mode is restored however the block ends, also when
the forward pass raises. It avoids the deprecated ``Module.register_backward_hook`` (which reports
gradients of a module's last operation, not of its output): gradients come from tensor hooks on the
captured outputs, or from ``torch.autograd.grad`` on them.

In-place operations: a layer's output may be overwritten by a following ``ReLU(inplace=True)``. The
forward hook therefore keeps the original output tensor and hands a copy on to the rest of the network,
so the captured activation is the layer's true output and gradients with respect to it are exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnlab.errors import UserError


@dataclass
class Captured:
    """Outputs of the captured layers from the latest forward pass (the last call of a module that runs
    more than once), and the gradients that reached them in the latest backward pass."""

    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)


def named_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module called ``name``, or a UserError that says how to list the valid names."""
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise UserError(f"the model has no layer '{name}': list the layer names with `cnnlab explain layers RUN`")
    return modules[name]


@contextmanager
def capture(
    model: nn.Module, layers: Sequence[str], gradients: bool = False, eval_mode: bool = True
) -> Iterator[Captured]:
    """Record the outputs of ``layers`` (names from ``model.named_modules()``) while the block runs.

    With ``gradients=True`` a tensor hook on each output also records the gradient that reaches it when
    the caller runs ``backward()``. ``eval_mode`` puts the model in eval mode for the block (BatchNorm
    running statistics, no dropout: each image is explained on its own); the previous mode of every
    sub-module comes back afterwards.
    """
    captured = Captured()
    modes = {m: m.training for m in model.modules()}
    handles = []

    def keep_gradient(name: str, output: torch.Tensor, grad: torch.Tensor) -> None:
        if captured.activations.get(name) is output:  # a module called twice: the last call's gradient
            captured.gradients[name] = grad

    def hook_for(name: str):  # type: ignore[no-untyped-def]
        def forward_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if not isinstance(output, torch.Tensor):
                raise UserError(f"layer '{name}' returns {type(output).__name__}, not a tensor: pick another layer")
            captured.activations[name] = output
            if gradients and output.requires_grad:
                output.register_hook(lambda grad: keep_gradient(name, output, grad))
            return output.clone()  # later in-place operations change the copy, not the captured output

        return forward_hook

    try:
        for name in layers:
            handles.append(named_layer(model, name).register_forward_hook(hook_for(name)))
        if eval_mode:
            model.eval()
        yield captured
    finally:
        for h in handles:
            h.remove()
        for m, training in modes.items():
            m.training = training
