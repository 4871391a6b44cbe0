"""Max and average pooling over any window, stride and padding, overlapping windows included.

Both backward passes loop over the ``kh*kw`` window taps and *add* each tap's share of the output
gradient onto the input pixels that tap read (the same slices as the convolution's col2im). When the
stride is smaller than the window, one pixel belongs to several windows and must collect gradient
from each; the classic bug of assigning with ``=`` passes 2x2/stride-2 tests, where windows are
disjoint, and silently drops gradient for 3x3/stride-1.

Tie rule for max pooling: when several elements of a window share the maximum, the gradient goes to
the *first* of them in row-major order within the window (``np.argmax`` semantics). PyTorch's CPU
kernel does the same (it only replaces the running maximum on a strictly greater value), and the tests
check it on integer-valued inputs full of ties.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from cnnlab.reference.conv import ConvGeometry, pad_spatial
from cnnlab.reference.layer import Layer, pair

Pair = tuple[int, int]


def pool_geometry(kernel_size: int | Pair, stride: int | Pair | None, padding: int | Pair) -> ConvGeometry:
    """Stride defaults to the window size, as in PyTorch; padding may be at most half the window."""
    kernel = pair(kernel_size, "kernel_size")
    geometry = ConvGeometry(kernel, pair(stride if stride is not None else kernel, "stride"), pair(padding, "padding"))
    if any(2 * p > k for p, k in zip(geometry.padding, kernel)):
        raise ValueError(f"pool padding {geometry.padding} must be at most half the window {kernel}")
    return geometry


def _windows(padded: np.ndarray, geometry: ConvGeometry, out_shape: Pair) -> np.ndarray:
    """Read-only view (N, C, OH, OW, kh, kw) of every pooling window; no copy."""
    (sh, sw), (oh, ow) = geometry.stride, out_shape
    view = sliding_window_view(padded, geometry.kernel, axis=(2, 3))
    return view[:, :, ::sh, ::sw][:, :, :oh, :ow]


def _scatter_taps(
    per_tap_grad: np.ndarray, padded_shape: tuple[int, ...], geometry: ConvGeometry
) -> np.ndarray:
    """Sum the gradient each window tap sends back, shape (kh, kw, N, C, OH, OW), onto the padded input."""
    kh, kw = geometry.kernel
    oh, ow = per_tap_grad.shape[-2:]
    grad_padded = np.zeros(padded_shape, dtype=per_tap_grad.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cols = geometry.tap_slices(i, j, oh, ow)
            grad_padded[:, :, rows, cols] += per_tap_grad[i, j]
    return grad_padded


def _crop(grad_padded: np.ndarray, geometry: ConvGeometry) -> np.ndarray:
    (ph, pw), (h, w) = geometry.padding, grad_padded.shape[-2:]
    return grad_padded[:, :, ph : h - ph, pw : w - pw]


class MaxPool2d(Layer):
    """NumPy twin of ``torch.nn.MaxPool2d`` (padding counts as -inf, as in PyTorch)."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0) -> None:
        self.geometry = pool_geometry(kernel_size, stride, padding)
        self._argmax: np.ndarray | None = None
        self._padded_shape: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        out_shape = self.geometry.output_shape(*x.shape[2:])
        padded = pad_spatial(x, self.geometry.padding, value=-np.inf)
        windows = _windows(padded, self.geometry, out_shape)
        flat = windows.reshape(*windows.shape[:4], -1)  # taps in row-major order
        self._argmax = flat.argmax(axis=-1)  # first maximum wins ties, like PyTorch
        self._padded_shape = padded.shape
        return np.take_along_axis(flat, self._argmax[..., None], axis=-1)[..., 0]

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._argmax is None:
            raise RuntimeError("MaxPool2d.backward called before forward")
        kh, kw = self.geometry.kernel
        taps = np.arange(kh * kw).reshape(kh, kw, 1, 1, 1, 1)
        per_tap = np.where(self._argmax == taps, grad_out, 0).astype(grad_out.dtype, copy=False)
        return _crop(_scatter_taps(per_tap, self._padded_shape, self.geometry), self.geometry)


class AvgPool2d(Layer):
    """NumPy twin of ``torch.nn.AvgPool2d`` with its default ``count_include_pad=True``: every window,
    padded or not, is divided by ``kh*kw``."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None, padding: int | Pair = 0) -> None:
        self.geometry = pool_geometry(kernel_size, stride, padding)
        self._padded_shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        out_shape = self.geometry.output_shape(*x.shape[2:])
        padded = pad_spatial(x, self.geometry.padding)
        self._padded_shape = padded.shape
        return _windows(padded, self.geometry, out_shape).mean(axis=(-2, -1))

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        if self._padded_shape is None:
            raise RuntimeError("AvgPool2d.backward called before forward")
        kh, kw = self.geometry.kernel
        share = grad_out / (kh * kw)
        per_tap = np.broadcast_to(share, (kh, kw, *share.shape))
        return _crop(_scatter_taps(per_tap, self._padded_shape, self.geometry), self.geometry)
