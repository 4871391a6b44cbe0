"""The vectorised NumPy convolution against its independent formulations: the naive loop, the
full-convolution formula for the input gradient, the adjoint identity of im2col/col2im, and a case
small enough to work out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.reference.conv import Conv2d, ConvGeometry, col2im, conv2d_backward, conv2d_forward, im2col
from cnnlab.reference.conv_naive import (
    conv2d_backward_naive,
    conv2d_forward_naive,
    conv2d_input_grad_full_convolution,
)


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, ConvGeometry]:
    kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
    geometry = ConvGeometry(
        kernel,  # type: ignore[arg-type]
        stride=tuple(int(s) for s in rng.integers(1, 4, 2)),  # type: ignore[arg-type]
        padding=tuple(int(p) for p in rng.integers(0, 3, 2)),  # type: ignore[arg-type]
        dilation=tuple(int(d) for d in rng.integers(1, 3, 2)),  # type: ignore[arg-type]
    )
    n, c, f = (int(v) for v in rng.integers(1, 4, 3))
    h, w = (d * (k - 1) + 1 + int(rng.integers(0, 5)) for d, k in zip(geometry.dilation, kernel))
    return rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, *kernel)), rng.normal(size=f), geometry


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_matches_naive_loop_and_full_convolution(seed: int) -> None:
    x, w, b, geometry = random_case(np.random.default_rng(seed))
    out, cache = conv2d_forward(x, w, b, geometry)
    grad_out = np.random.default_rng(1000 + seed).normal(size=out.shape)
    dx, dw, db = conv2d_backward(grad_out, cache)

    np.testing.assert_allclose(out, conv2d_forward_naive(x, w, b, geometry), rtol=0, atol=1e-12)
    naive_dx, naive_dw, naive_db = conv2d_backward_naive(grad_out, x, w, geometry)
    np.testing.assert_allclose(dx, naive_dx, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dw, naive_dw, rtol=0, atol=1e-12)
    np.testing.assert_allclose(db, naive_db, rtol=0, atol=1e-12)
    full_conv_dx = conv2d_input_grad_full_convolution(grad_out, w, x.shape, geometry)
    np.testing.assert_allclose(dx, full_conv_dx, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(10))
def test_col2im_is_the_adjoint_of_im2col(seed: int) -> None:
    """<im2col(x), C> = <x, col2im(C)> holds only if col2im sums overlapping contributions."""
    rng = np.random.default_rng(seed)
    x, _, _, geometry = random_case(rng)
    cols = im2col(x, geometry)
    other = rng.normal(size=cols.shape)
    assert np.vdot(cols, other) == pytest.approx(np.vdot(x, col2im(other, x.shape, geometry)), rel=1e-12)


def test_hand_computed_example() -> None:
    x = np.arange(9, dtype=np.float64).reshape(1, 1, 3, 3)  # 0..8
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # x[i, j] - x[i+1, j+1]
    out, cache = conv2d_forward(x, w, np.array([0.5]), ConvGeometry((2, 2)))
    np.testing.assert_array_equal(out, [[[[-3.5, -3.5], [-3.5, -3.5]]]])
    dx, dw, db = conv2d_backward(np.ones_like(out), cache)
    # Each output adds +1 to its top-left pixel and -1 to its bottom-right pixel.
    np.testing.assert_array_equal(dx[0, 0], [[1, 1, 0], [1, 0, -1], [0, -1, -1]])
    # dW[i, j] = sum of the pixels that tap (i, j) read: top-left 2x2 block, top-right, ...
    np.testing.assert_array_equal(dw[0, 0], [[0 + 1 + 3 + 4, 1 + 2 + 4 + 5], [3 + 4 + 6 + 7, 4 + 5 + 7 + 8]])
    np.testing.assert_array_equal(db, [4.0])


def test_stride_is_respected_in_the_backward_pass() -> None:
    """With stride 2 and a 1x1 kernel, only every other pixel is read, so only those get gradient."""
    x = np.ones((1, 1, 5, 5))
    out, cache = conv2d_forward(x, np.ones((1, 1, 1, 1)), None, ConvGeometry((1, 1), stride=(2, 2)))
    dx, _, _ = conv2d_backward(np.ones_like(out), cache)
    expected = np.zeros((5, 5))
    expected[::2, ::2] = 1
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_layer_keeps_float32_and_fills_gradients() -> None:
    layer = Conv2d(3, 4, 3, stride=2, padding=1, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).normal(size=(2, 3, 9, 9)).astype(np.float32)
    out = layer.forward(x)
    assert out.shape == (2, 4, 5, 5) and out.dtype == np.float32
    dx = layer.backward(np.ones_like(out))
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert layer.weight.grad.dtype == np.float32 and layer.bias is not None
    np.testing.assert_allclose(layer.bias.grad, np.full(4, 2 * 5 * 5))


def test_kernel_larger_than_padded_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="smaller than the"):
        conv2d_forward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 3, 3)), None, ConvGeometry((3, 3)))
