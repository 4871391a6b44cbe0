"""2-D convolution (cross-correlation, as in PyTorch) vectorised with im2col / col2im.

im2col copies every receptive field into one column, so the forward pass is a single matrix product
``W (F x C*kh*kw) @ cols (C*kh*kw x N*OH*OW)``. The backward pass is three more products/sums:

* ``dW = dY @ cols.T``: the cross-correlation of the input with the output gradient;
* ``db = dY summed over batch and positions``;
* ``dX = col2im(W.T @ dY)``: every column's gradient is added back onto the input pixels it was copied
  from, which equals the full convolution of the (zero-inserted, for stride > 1) output gradient with
  the flipped kernels (see ``conv_naive.conv2d_input_grad_full_convolution`` and docs/backprop.md).

Shapes follow PyTorch: input (N, C, H, W), weight (F, C, kh, kw), bias (F,), output (N, F, OH, OW).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnnlab.reference.layer import Layer, Parameter, pair, uniform_init

Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Number of window positions along one axis; the same formula as ``torch.nn.Conv2d``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvGeometry:
    """Everything that fixes which input pixel each kernel tap reads at each output position."""

    kernel: Pair
    stride: Pair = (1, 1)
    padding: Pair = (0, 0)
    dilation: Pair = (1, 1)

    def output_shape(self, height: int, width: int) -> Pair:
        out = tuple(
            conv_output_size(s, k, st, p, d)
            for s, k, st, p, d in zip((height, width), self.kernel, self.stride, self.padding, self.dilation)
        )
        if min(out) < 1:
            raise ValueError(f"input {height}x{width} is smaller than the (dilated) kernel for {self}")
        return out  # type: ignore[return-value]

    def tap_slices(self, i: int, j: int, out_h: int, out_w: int) -> tuple[slice, slice]:
        """Rows and columns of the padded input that kernel tap (i, j) reads, one per output position.

        Within one tap the positions are all distinct, so ``+=`` on this slice accumulates correctly;
        overlap only happens *across* taps, and those are separate ``+=`` statements.
        """
        (sh, sw), (dh, dw) = self.stride, self.dilation
        rows = slice(i * dh, i * dh + sh * (out_h - 1) + 1, sh)
        cols = slice(j * dw, j * dw + sw * (out_w - 1) + 1, sw)
        return rows, cols


def pad_spatial(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if ph == pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def im2col(x: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    """(N, C, H, W) -> (C*kh*kw, N*OH*OW); column ``n*OH*OW + oh*OW + ow`` is that output's receptive
    field, rows ordered (c, i, j) to match ``weight.reshape(F, -1)``."""
    n, c, h, w = x.shape
    (kh, kw), (oh, ow) = geometry.kernel, geometry.output_shape(h, w)
    padded = pad_spatial(x, geometry.padding)
    cols = np.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, columns = geometry.tap_slices(i, j, oh, ow)
            cols[:, i, j] = padded[:, :, rows, columns].transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols: np.ndarray, x_shape: tuple[int, ...], geometry: ConvGeometry) -> np.ndarray:
    """The adjoint of ``im2col``: add every column entry back onto the pixel it was copied from.

    A pixel sits in several receptive fields when windows overlap (kernel > stride), so its gradient
    is the *sum* of their contributions; assigning with ``=`` would keep only the last one.
    """
    n, c, h, w = x_shape
    (kh, kw), (oh, ow), (ph, pw) = geometry.kernel, geometry.output_shape(h, w), geometry.padding
    padded = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            rows, columns = geometry.tap_slices(i, j, oh, ow)
            padded[:, :, rows, columns] += cols[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, ph : ph + h, pw : pw + w]


@dataclass
class ConvCache:
    """What the backward pass needs from the forward pass."""

    x_shape: tuple[int, ...]
    cols: np.ndarray
    weight: np.ndarray
    geometry: ConvGeometry


def conv2d_forward(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geometry: ConvGeometry
) -> tuple[np.ndarray, ConvCache]:
    """Y[n, f, oh, ow] = b[f] + sum_{c,i,j} W[f, c, i, j] * Xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]."""
    n, _, h, w = x.shape
    f = weight.shape[0]
    oh, ow = geometry.output_shape(h, w)
    cols = im2col(x, geometry)
    out = weight.reshape(f, -1) @ cols  # (F, N*OH*OW)
    if bias is not None:
        out += bias[:, None]
    out = np.ascontiguousarray(out.reshape(f, n, oh, ow).transpose(1, 0, 2, 3))
    return out, ConvCache(x.shape, cols, weight, geometry)


def conv2d_backward(
    grad_out: np.ndarray, cache: ConvCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (dX, dW, db) for the upstream gradient dY of shape (N, F, OH, OW)."""
    f = cache.weight.shape[0]
    grad_2d = grad_out.transpose(1, 0, 2, 3).reshape(f, -1)  # (F, N*OH*OW), columns as in im2col
    grad_weight = (grad_2d @ cache.cols.T).reshape(cache.weight.shape)
    grad_bias = grad_out.sum(axis=(0, 2, 3))
    grad_cols = cache.weight.reshape(f, -1).T @ grad_2d  # (C*kh*kw, N*OH*OW)
    grad_x = col2im(grad_cols, cache.x_shape, cache.geometry)
    return grad_x, grad_weight, grad_bias


class Conv2d(Layer):
    """NumPy twin of ``torch.nn.Conv2d`` (no groups): any kernel, stride, zero padding, dilation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | Pair,
        stride: int | Pair = 1,
        padding: int | Pair = 0,
        dilation: int | Pair = 1,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        rng = rng if rng is not None else np.random.default_rng()
        self.geometry = ConvGeometry(
            pair(kernel_size, "kernel_size"), pair(stride, "stride"), pair(padding, "padding"), pair(dilation, "dilation")
        )
        kh, kw = self.geometry.kernel
        fan_in = in_channels * kh * kw
        self.weight = Parameter(uniform_init(rng, (out_channels, in_channels, kh, kw), fan_in, np.dtype(dtype)))
        self.bias = Parameter(uniform_init(rng, (out_channels,), fan_in, np.dtype(dtype))) if bias else None
        self._cache: ConvCache | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        bias = self.bias.value if self.bias is not None else None
        out, self._cache = conv2d_forward(x, self.weight.value, bias, self.geometry)
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._cache is None:
            raise RuntimeError("Conv2d.backward called before forward")
        grad_x, self.weight.grad, grad_bias = conv2d_backward(grad_out, self._cache)
        if self.bias is not None:
            self.bias.grad = grad_bias
        return grad_x

    def parameters(self) -> list[Parameter]:
        return [self.weight] + ([self.bias] if self.bias is not None else [])
