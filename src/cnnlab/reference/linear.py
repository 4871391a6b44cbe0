"""Fully connected layer, the reshape that feeds it, and dropout."""

from __future__ import annotations

import numpy as np

from cnnlab.reference.layer import Layer, Parameter, uniform_init


class Linear(Layer):
    """y = x W^T + b with W of shape (out, in), as in ``torch.nn.Linear``.

    Backward: dW = dy^T x (summed over the batch by the product), db = dy summed over the batch,
    dx = dy W.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.weight = Parameter(uniform_init(rng, (out_features, in_features), in_features, np.dtype(dtype)))
        self.bias = Parameter(uniform_init(rng, (out_features,), in_features, np.dtype(dtype))) if bias else None
        self._x: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        out = x @ self.weight.value.T
        return out + self.bias.value if self.bias is not None else out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._x is None:
            raise RuntimeError("Linear.backward called before forward")
        self.weight.grad = grad_out.T @ self._x
        if self.bias is not None:
            self.bias.grad = grad_out.sum(axis=0)
        return grad_out @ self.weight.value

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])


class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C order, matching ``torch.nn.Flatten``; backward undoes the reshape."""

    def __init__(self) -> None:
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward")
        return grad_out.reshape(self._shape)


class Dropout(Layer):
    """Inverted dropout: in training, zero each element with probability p and scale survivors by
    1/(1-p), so evaluation (identity) needs no rescaling. Backward applies the same mask and scale."""

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng()
        self._scale: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if not self.training or self.p == 0.0:
            self._scale = np.ones((), dtype=x.dtype)
            return x
        keep = self.rng.random(x.shape) >= self.p
        self._scale = (keep / (1.0 - self.p)).astype(x.dtype)
        return x * self._scale

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._scale is None:
            raise RuntimeError("Dropout.backward called before forward")
        return grad_out * self._scale
