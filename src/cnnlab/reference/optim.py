"""Stochastic gradient descent with momentum, with the update rule of ``torch.optim.SGD``."""

from __future__ import annotations

import numpy as np

from cnnlab.reference.layer import Parameter


class SGD:
    """v <- momentum * v + (grad + weight_decay * p);  p <- p - lr * v.

    This is PyTorch's form (dampening 0, no Nesterov), which differs from the "v <- momentum * v -
    lr * grad" textbook form once the learning rate changes; matching it is what lets the NumPy CNN
    and its PyTorch twin produce the same losses step by step.
    """

    def __init__(self, parameters: list[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        if lr <= 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        self.parameters, self.lr, self.momentum, self.weight_decay = parameters, lr, momentum, weight_decay
        self._velocity: list[np.ndarray | None] = [None] * len(parameters)

    def step(self) -> None:
        for k, p in enumerate(self.parameters):
            grad = p.grad + self.weight_decay * p.value if self.weight_decay else p.grad
            if self.momentum:
                velocity = self._velocity[k]
                # PyTorch starts the buffer at the first gradient, i.e. from zero with no dampening.
                grad = grad.copy() if velocity is None else self.momentum * velocity + grad
                self._velocity[k] = grad
            p.value -= self.lr * grad
