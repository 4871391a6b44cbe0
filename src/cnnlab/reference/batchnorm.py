"""Batch normalisation over (N, H, W) per channel, with PyTorch's running-statistics conventions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.reference.layer import Layer, Parameter

_AXES = (0, 2, 3)  # statistics are per channel, pooled over batch and positions


@dataclass
class _BatchNormCache:
    normalised: np.ndarray  # x_hat = (x - mean) / sqrt(var + eps)
    inv_std: np.ndarray  # 1 / sqrt(var + eps), shape (1, C, 1, 1)
    batch_statistics: bool  # True in training: mean and var depend on x and must be differentiated


class BatchNorm2d(Layer):
    """NumPy twin of ``torch.nn.BatchNorm2d`` (affine, tracking running statistics).

    Training normalises with the batch mean and *biased* variance, and updates the running variance
    with the *unbiased* one (m / (m - 1) times larger, m = N*H*W), exactly as PyTorch does. Evaluation
    uses the running statistics, which makes the layer a fixed per-channel affine map.
    """

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.1, *, dtype: np.dtype | type = np.float32
    ) -> None:
        self.eps, self.momentum = eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.running_mean = np.zeros(num_features, dtype=dtype)
        self.running_var = np.ones(num_features, dtype=dtype)
        self._cache: _BatchNormCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        if self.training:
            mean, var = x.mean(axis=_AXES), x.var(axis=_AXES)
            m = x.size // x.shape[1]
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var * (m / max(m - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (1.0 / np.sqrt(var + self.eps)).reshape(1, -1, 1, 1)
        normalised = (x - mean.reshape(1, -1, 1, 1)) * inv_std
        self._cache = _BatchNormCache(normalised, inv_std, self.training)
        return normalised * self.weight.value.reshape(1, -1, 1, 1) + self.bias.value.reshape(1, -1, 1, 1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """With g = dL/dx_hat = dy * gamma and m elements per channel, training mode gives

        dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)),

        the two subtracted terms being the paths through the batch mean and the batch variance.
        """
        if self._cache is None:
            raise RuntimeError("BatchNorm2d.backward called before forward")
        x_hat, inv_std = self._cache.normalised, self._cache.inv_std
        self.weight.grad = (grad_out * x_hat).sum(axis=_AXES)
        self.bias.grad = grad_out.sum(axis=_AXES)
        g = grad_out * self.weight.value.reshape(1, -1, 1, 1)
        if not self._cache.batch_statistics:
            return g * inv_std
        return inv_std * (g - g.mean(axis=_AXES, keepdims=True) - x_hat * (g * x_hat).mean(axis=_AXES, keepdims=True))

    def parameters(self) -> list[Parameter]:
        return [self.weight, self.bias]
