"""Second, independent formulations of the convolution and its gradients, used to check ``conv.py``.

``conv2d_forward_naive`` / ``conv2d_backward_naive`` loop over output positions and write the
textbook sums directly (one ``einsum`` per position over batch, filters, channels and kernel taps), so
they share no indexing code with im2col/col2im. ``conv2d_input_grad_full_convolution`` computes the
input gradient the way the formula is usually stated: insert zeros into the output gradient, pad it,
and convolve with the flipped, channel-swapped kernels. All three are slow; use them on small inputs.
"""

from __future__ import annotations

import numpy as np

from cnnlab.reference.conv import ConvGeometry, conv2d_forward, pad_spatial


def _window(geometry: ConvGeometry, row: int, col: int) -> tuple[slice, slice]:
    """The (dilated) receptive field of output position (row, col) in the padded input."""
    (kh, kw), (sh, sw), (dh, dw) = geometry.kernel, geometry.stride, geometry.dilation
    top, left = row * sh, col * sw
    return slice(top, top + dh * (kh - 1) + 1, dh), slice(left, left + dw * (kw - 1) + 1, dw)


def conv2d_forward_naive(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, geometry: ConvGeometry
) -> np.ndarray:
    """Y[n, f, oh, ow] = b[f] + sum_{c,i,j} W[f, c, i, j] * Xpad[n, c, oh*sh + i*dh, ow*sw + j*dw]."""
    n, _, h, w = x.shape
    oh, ow = geometry.output_shape(h, w)
    padded = pad_spatial(x, geometry.padding)
    out = np.zeros((n, weight.shape[0], oh, ow), dtype=x.dtype)
    for row in range(oh):
        for col in range(ow):
            rows, cols = _window(geometry, row, col)
            out[:, :, row, col] = np.einsum("ncij,fcij->nf", padded[:, :, rows, cols], weight)
    if bias is not None:
        out += bias[None, :, None, None]
    return out


def conv2d_backward_naive(
    grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray, geometry: ConvGeometry
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dX, dW, db) by the chain rule, one output position at a time.

    Each output Y[n, f, oh, ow] touched one window of X and all of W[f], so it sends
    dY[n, f, oh, ow] * W[f] back to that window and dY[n, f, oh, ow] * window to W[f].
    """
    n, _, h, w = x.shape
    oh, ow = geometry.output_shape(h, w)
    padded = pad_spatial(x, geometry.padding)
    grad_padded = np.zeros_like(padded)
    grad_weight = np.zeros_like(weight)
    for row in range(oh):
        for col in range(ow):
            rows, cols = _window(geometry, row, col)
            g = grad_out[:, :, row, col]  # (N, F)
            grad_weight += np.einsum("nf,ncij->fcij", g, padded[:, :, rows, cols])
            grad_padded[:, :, rows, cols] += np.einsum("nf,fcij->ncij", g, weight)
    ph, pw = geometry.padding
    grad_x = grad_padded[:, :, ph : ph + h, pw : pw + w]
    return grad_x, grad_weight, grad_out.sum(axis=(0, 2, 3))


def conv2d_input_grad_full_convolution(
    grad_out: np.ndarray, weight: np.ndarray, x_shape: tuple[int, ...], geometry: ConvGeometry
) -> np.ndarray:
    """dX as the full convolution of the zero-inserted output gradient with the flipped kernels.

    1. Insert ``stride - 1`` zeros between output-gradient entries: dY moves back onto the input grid.
    2. Pad by the dilated kernel extent minus one on both sides ("full" convolution), plus the rows and
       columns at the end that the strided forward pass never reached (they get zero gradient).
    3. Cross-correlate (stride 1, same dilation) with the kernels flipped in space and with input and
       output channels swapped, i.e. convolve with the original kernels.
    4. Crop the zero padding of the forward pass.
    """
    n, f, oh, ow = grad_out.shape
    _, c, h, w = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geometry.kernel, geometry.stride, geometry.padding, geometry.dilation
    spread = np.zeros((n, f, (oh - 1) * sh + 1, (ow - 1) * sw + 1), dtype=grad_out.dtype)
    spread[:, :, ::sh, ::sw] = grad_out
    extent_h, extent_w = dh * (kh - 1), dw * (kw - 1)
    missed_h = (h + 2 * ph - extent_h - 1) % sh
    missed_w = (w + 2 * pw - extent_w - 1) % sw
    spread = np.pad(spread, ((0, 0), (0, 0), (extent_h, extent_h + missed_h), (extent_w, extent_w + missed_w)))
    flipped = np.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))  # (C, F, kh, kw)
    grad_padded, _ = conv2d_forward(spread, flipped, None, ConvGeometry((kh, kw), dilation=(dh, dw)))
    assert grad_padded.shape == (n, c, h + 2 * ph, w + 2 * pw)
    return grad_padded[:, :, ph : ph + h, pw : pw + w]
