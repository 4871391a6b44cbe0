"""``layers.AdaptiveAvgPool`` (the reference CNN's pool to 2x2) gives ``F.adaptive_avg_pool2d``'s numbers and
gradients for any input size, also under bf16 autocast, and lets the reference CNN train in deterministic
mode on a GPU: it exists because the native op's CUDA backward refuses
``torch.use_deterministic_algorithms(True)``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.models import create_model
from cnnlab.models.layers import AdaptiveAvgPool


@settings(max_examples=40, deadline=None)
@given(h=st.integers(1, 11), w=st.integers(1, 11), size=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_equals_the_native_adaptive_pool_and_its_gradient(h, w, size, seed):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed), requires_grad=True)
    weights = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed + 1))
    ours = AdaptiveAvgPool(size)(x)
    (grad,) = torch.autograd.grad((ours * weights).sum(), x)
    native = F.adaptive_avg_pool2d(x, size)
    (native_grad,) = torch.autograd.grad((native * weights).sum(), x)
    torch.testing.assert_close(ours, native, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, native_grad, rtol=1e-6, atol=1e-6)


def test_overlapping_windows_by_hand():
    """3 -> 2 cells: PyTorch's windows overlap (rows 0-1 and 1-2), each averaged."""
    x = torch.arange(9.0).reshape(1, 1, 3, 3)
    assert AdaptiveAvgPool(2)(x).flatten().tolist() == [2.0, 3.0, 5.0, 6.0]


def test_keeps_the_dtype_and_float32_precision_under_bf16_autocast():
    """5 -> 2 averages 3 values: a bf16 1/3 would be off by 0.2%; ours matches the native op's bf16 output."""
    x = torch.randn(2, 4, 5, 5, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = AdaptiveAvgPool(2)(x)
    assert ours.dtype == torch.bfloat16
    torch.testing.assert_close(ours, F.adaptive_avg_pool2d(x, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: only CUDA's native backward refuses "
                    "deterministic mode")
def test_reference_cnn_trains_a_step_in_deterministic_mode_at_64_px_on_a_gpu(monkeypatch):
    """At 64 px the last block is 4x4 and the pool runs; with nn.AdaptiveAvgPool2d this step raised
    "adaptive_avg_pool2d_backward_cuda does not have a deterministic implementation"."""
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # as --deterministic sets it
    model = create_model("ahe_cnn", num_classes=10).cuda()
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        model(torch.randn(2, 3, 64, 64, device="cuda")).logsumexp(1).sum().backward()
    finally:
        torch.use_deterministic_algorithms(was)
    assert model.features[0].conv.weight.grad.abs().sum() > 0
