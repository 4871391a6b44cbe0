"""What every reference layer shares: trainable parameters with their gradients, and the
forward/backward contract.

The contract is deliberately simpler than autograd: ``forward`` caches what the backward pass needs,
``backward(grad_out)`` must follow the matching ``forward`` and returns the gradient with respect to
the layer's input, writing (not accumulating) each parameter's ``grad``. One forward, one backward,
one optimiser step: that is all a training loop needs, and it keeps every gradient formula visible.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Parameter:
    """A trainable array and the gradient of the loss with respect to it (same shape and dtype)."""

    value: np.ndarray
    grad: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.grad = np.zeros_like(self.value)


class Layer:
    """Base class: stateless layers only override ``forward`` and ``backward``."""

    training: bool = True

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> list[Parameter]:
        return []

    def train(self, mode: bool = True) -> Layer:
        """Switch between training and evaluation behaviour (dropout, batch-norm statistics)."""
        self.training = mode
        return self

    def eval(self) -> Layer:
        return self.train(False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)


def pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    """Accept ``3`` or ``(3, 5)`` like PyTorch does for kernel sizes, strides, padding and dilation."""
    pair_ = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair_) != 2 or not all(isinstance(v, int) for v in pair_):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair_  # type: ignore[return-value]


def uniform_init(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int, dtype: np.dtype) -> np.ndarray:
    """PyTorch's default for conv and linear layers: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (``kaiming_uniform_(a=sqrt(5))`` on the weight reduces to exactly this bound, and the bias uses it
    explicitly), so a NumPy layer starts from the same distribution as its PyTorch twin.
    """
    bound = 1.0 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)
