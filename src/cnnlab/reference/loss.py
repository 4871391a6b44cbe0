"""Softmax cross-entropy, fused because the fused gradient is simple and numerically safe."""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log softmax; subtracting the row maximum keeps exp() from overflowing."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class SoftmaxCrossEntropy:
    """Mean over the batch of -log softmax(logits)[label], like ``torch.nn.functional.cross_entropy``.

    The gradient with respect to the logits is (softmax(logits) - one_hot(label)) / N: the softmax
    Jacobian and the log's derivative cancel, so no division by a probability is ever needed.
    """

    def __init__(self) -> None:
        self._probs: np.ndarray | None = None
        self._labels: np.ndarray | None = None

    def forward(self, logits: np.ndarray, labels: np.ndarray) -> float:
        log_probs = log_softmax(logits)
        self._probs, self._labels = np.exp(log_probs), labels
        return float(-log_probs[np.arange(len(labels)), labels].mean())

    def backward(self, grad_loss: float = 1.0) -> np.ndarray:
        """Gradient of ``grad_loss * loss`` with respect to the logits."""
        if self._probs is None or self._labels is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        grad = self._probs.copy()
        grad[np.arange(len(self._labels)), self._labels] -= 1.0
        return grad * (grad_loss / len(self._labels))

    __call__ = forward
