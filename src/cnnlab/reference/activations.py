"""Element-wise activations. Each backward multiplies the upstream gradient by the local derivative,
computed from whatever the forward pass cached most cheaply (the input sign or the output itself).

At the kink x = 0, ReLU and LeakyReLU use the derivative of the x <= 0 branch, as PyTorch does.
"""

from __future__ import annotations

import numpy as np

from cnnlab.reference.layer import Layer


class _Elementwise(Layer):
    """Caches one array in ``forward``; ``backward`` refuses to run without it."""

    _saved: np.ndarray | None = None

    def _saved_or_raise(self) -> np.ndarray:
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved


class ReLU(_Elementwise):
    """y = max(x, 0); dy/dx = 1 where x > 0, else 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._saved = x > 0
        return np.where(self._saved, x, 0).astype(x.dtype, copy=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return np.where(self._saved_or_raise(), grad_out, 0).astype(grad_out.dtype, copy=False)


class LeakyReLU(_Elementwise):
    """y = x where x > 0, else slope * x; the derivative is 1 or slope."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = negative_slope

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._saved = x > 0
        return np.where(self._saved, x, self.negative_slope * x).astype(x.dtype, copy=False)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        slope = np.where(self._saved_or_raise(), 1.0, self.negative_slope).astype(grad_out.dtype)
        return grad_out * slope


class Sigmoid(_Elementwise):
    """y = 1 / (1 + exp(-x)); dy/dx = y (1 - y), so only the output is kept."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        # 0.5 (1 + tanh(x/2)) is the same function without overflow in exp(-x) for large negative x.
        self._saved = 0.5 * (1.0 + np.tanh(0.5 * x))
        return self._saved

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        y = self._saved_or_raise()
        return grad_out * y * (1.0 - y)


class Tanh(_Elementwise):
    """y = tanh(x); dy/dx = 1 - y^2."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._saved = np.tanh(x)
        return self._saved

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        y = self._saved_or_raise()
        return grad_out * (1.0 - y * y)
