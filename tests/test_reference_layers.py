"""Layers whose behaviour goes beyond a gradient formula: dropout masks, batch-norm running statistics
and evaluation mode, the SGD update rule, and the NumPy-only import promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.reference import SGD, BatchNorm2d, Dropout, Linear, Parameter, ReLU, SoftmaxCrossEntropy


def test_layers_import_without_torch() -> None:
    src = str(Path(cnnlab.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    code = "import sys, cnnlab.reference, cnnlab.reference.gradcheck; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_dropout_backward_uses_the_forward_mask() -> None:
    layer = Dropout(0.4, rng=np.random.default_rng(0))
    x = np.ones((200, 50))
    out = layer.forward(x)
    kept = out != 0
    assert 0.55 < kept.mean() < 0.65  # keep probability 0.6
    np.testing.assert_allclose(out[kept], 1 / 0.6)
    grad = layer.backward(np.full_like(x, 2.0))
    np.testing.assert_allclose(grad, np.where(kept, 2.0 / 0.6, 0.0))


def test_dropout_is_identity_in_eval_mode() -> None:
    layer = Dropout(0.9).eval()
    x = np.random.default_rng(0).normal(size=(3, 4))
    np.testing.assert_array_equal(layer.forward(x), x)
    np.testing.assert_array_equal(layer.backward(x), x)


def test_relu_gradient_at_zero_is_zero_like_pytorch() -> None:
    x = np.array([-1.0, 0.0, 2.0])
    relu = ReLU()
    relu.forward(x)
    xt = torch.tensor(x, requires_grad=True)
    torch.relu(xt).sum().backward()
    np.testing.assert_array_equal(relu.backward(np.ones(3)), xt.grad.numpy())


def test_batchnorm_running_statistics_and_eval_mode_match_pytorch() -> None:
    rng = np.random.default_rng(0)
    ours, theirs = BatchNorm2d(3, dtype=np.float64), torch.nn.BatchNorm2d(3).double()
    for _ in range(4):
        x = rng.normal(loc=2.0, scale=3.0, size=(4, 3, 5, 5))
        ours.forward(x)
        theirs(torch.from_numpy(x))
    np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=0, atol=1e-12)

    ours.eval()
    theirs.eval()
    gamma, beta = rng.normal(size=3), rng.normal(size=3)
    ours.weight.value, ours.bias.value = gamma, beta
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(gamma))
        theirs.bias.copy_(torch.from_numpy(beta))
    x = rng.normal(size=(2, 3, 4, 4))
    grad_out = rng.normal(size=x.shape)
    xt = torch.tensor(x, requires_grad=True)
    out_t = theirs(xt)
    out_t.backward(torch.from_numpy(grad_out))
    np.testing.assert_allclose(ours.forward(x), out_t.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.backward(grad_out), xt.grad.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("momentum", "weight_decay"), [(0.0, 0.0), (0.9, 0.0), (0.8, 1e-2)])
def test_sgd_matches_torch_optim_sgd(momentum: float, weight_decay: float) -> None:
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4))
    ours = Parameter(start.copy())
    theirs = torch.tensor(start.copy(), requires_grad=True)
    sgd = SGD([ours], lr=0.1, momentum=momentum, weight_decay=weight_decay)
    torch_sgd = torch.optim.SGD([theirs], lr=0.1, momentum=momentum, weight_decay=weight_decay)
    for _ in range(5):
        grad = rng.normal(size=start.shape)
        ours.grad = grad
        theirs.grad = torch.from_numpy(grad.copy())
        sgd.step()
        torch_sgd.step()
    np.testing.assert_allclose(ours.value, theirs.detach().numpy(), rtol=0, atol=1e-14)


def test_cross_entropy_is_stable_for_huge_logits() -> None:
    loss = SoftmaxCrossEntropy()
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 0.0]])
    value = loss.forward(logits, np.array([0, 2]))
    assert value == pytest.approx(1000.0)  # (0 + 2000) / 2
    grad = loss.backward()
    np.testing.assert_allclose(grad, [[0, 0, 0], [0, 0.5, -0.5]], atol=1e-12)


def test_linear_matches_torch_initialisation_bounds() -> None:
    layer = Linear(400, 5, rng=np.random.default_rng(0))
    assert layer.weight.value.shape == (5, 400) and layer.weight.value.dtype == np.float32
    assert np.abs(layer.weight.value).max() <= 1 / 20 and np.abs(layer.weight.value).max() > 0.9 / 20
