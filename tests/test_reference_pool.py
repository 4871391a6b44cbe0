"""Pooling: overlapping windows must accumulate gradient, and max pooling must break ties like PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab.reference.pool import AvgPool2d, MaxPool2d


def windows_containing_each_pixel(size: int, kernel: int, stride: int) -> np.ndarray:
    """Count, by brute force, how many pooling windows cover each pixel of a size x size image."""
    counts = np.zeros((size, size))
    positions = range(0, size - kernel + 1, stride)
    for top in positions:
        for left in positions:
            counts[top : top + kernel, left : left + kernel] += 1
    return counts


@pytest.mark.parametrize(("kernel", "stride"), [(3, 1), (2, 1), (3, 2), (2, 2), (4, 3)])
def test_avg_pool_backward_sums_over_overlapping_windows(kernel: int, stride: int) -> None:
    pool = AvgPool2d(kernel, stride)
    out = pool.forward(np.random.default_rng(0).normal(size=(1, 1, 7, 7)))
    dx = pool.backward(np.ones_like(out))
    np.testing.assert_allclose(dx[0, 0], windows_containing_each_pixel(7, kernel, stride) / kernel**2)


def test_max_pool_gradient_reaches_a_pixel_once_per_window_it_wins() -> None:
    """A single large pixel is the maximum of all nine 3x3/stride-1 windows that contain it; with `=`
    instead of `+=` it would receive 1 instead of 9."""
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0
    pool = MaxPool2d(3, stride=1)
    out = pool.forward(x)
    assert out.shape == (1, 1, 3, 3) and np.all(out == 10.0)
    dx = pool.backward(np.ones_like(out))
    assert dx[0, 0, 2, 2] == 9.0 and dx.sum() == 9.0


def first_maximum_gradient(x: np.ndarray, grad_out: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Independent tie rule: plain loops, the gradient of each window goes to its first maximum in
    row-major order."""
    n, c, h, w = x.shape
    dx = np.zeros_like(x)
    for i in range(n):
        for j in range(c):
            for r in range(grad_out.shape[2]):
                for s in range(grad_out.shape[3]):
                    window = x[i, j, r * stride : r * stride + kernel, s * stride : s * stride + kernel]
                    first = next(
                        (a, b) for a in range(kernel) for b in range(kernel) if window[a, b] == window.max()
                    )
                    dx[i, j, r * stride + first[0], s * stride + first[1]] += grad_out[i, j, r, s]
    return dx


@pytest.mark.parametrize(("kernel", "stride"), [(2, 2), (3, 1), (3, 2), (2, 1)])
def test_max_pool_ties_go_to_the_first_maximum_like_pytorch(kernel: int, stride: int) -> None:
    rng = np.random.default_rng(kernel * 10 + stride)
    x = rng.integers(0, 3, size=(2, 3, 8, 8)).astype(np.float64)  # three values: ties everywhere
    pool = MaxPool2d(kernel, stride)
    out = pool.forward(x)
    grad_out = rng.normal(size=out.shape)
    dx = pool.backward(grad_out)

    # Exact up to summation order: a gradient sent to the wrong tied element would be off by O(1).
    np.testing.assert_allclose(dx, first_maximum_gradient(x, grad_out, kernel, stride), rtol=0, atol=1e-12)
    xt = torch.tensor(x, requires_grad=True)
    torch_out = F.max_pool2d(xt, kernel, stride)
    torch_out.backward(torch.from_numpy(grad_out))
    np.testing.assert_array_equal(out, torch_out.detach().numpy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)


def test_max_pool_padding_never_wins() -> None:
    """Padding is -inf, as in PyTorch, so an all-negative image still pools to its own values."""
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    pool = MaxPool2d(2, stride=2, padding=1)
    out = pool.forward(x)
    expected = F.max_pool2d(torch.from_numpy(x), 2, 2, 1).numpy()
    np.testing.assert_array_equal(out, expected)
    assert np.all(np.isfinite(out))


def test_pool_padding_larger_than_half_the_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2d(2, padding=2)
