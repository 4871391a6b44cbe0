"""capture(): activations and gradients of named layers, no hook left behind, mode restored, in-place safe."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.explain.hooks import capture
from cnnlab.explain.layers import conv_units, default_cam_layer, probe_calls


def small_net(inplace: bool) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=inplace), nn.BatchNorm2d(4), nn.Dropout(0.5),
        nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(inplace=inplace), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 3),
    )


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_activations_and_gradients_match_autograd():
    model = small_net(inplace=False).eval()
    x = torch.randn(2, 3, 8, 8)
    with capture(model, ["0", "4"], gradients=True) as cap:
        model(x)[:, 1].sum().backward()
    a0 = model[0](x)
    assert torch.allclose(cap.activations["0"], a0)
    a0_ref = a0.detach().requires_grad_(True)
    a4_ref = model[4](model[3](model[2](model[1](a0_ref))))
    a4_ref.retain_grad()
    model[8](model[7](model[6](model[5](a4_ref))))[:, 1].sum().backward()
    assert torch.allclose(cap.gradients["0"], a0_ref.grad, atol=1e-6)
    assert torch.allclose(cap.gradients["4"], a4_ref.grad, atol=1e-6)
    assert hook_count(model) == 0


def test_inplace_relu_does_not_change_the_captured_output_or_its_gradient():
    inplace, plain = small_net(inplace=True).eval(), small_net(inplace=False).eval()
    x = torch.randn(2, 3, 8, 8)
    results = []
    for model in (inplace, plain):
        with capture(model, ["0", "4"], gradients=True) as cap:
            model(x)[:, 2].sum().backward()
        results.append(cap)
    conv_out = plain[0](x)
    assert (conv_out < 0).any()  # the pre-ReLU output has negatives: the in-place ReLU did not reach it
    for name in ("0", "4"):
        assert torch.allclose(results[0].activations[name], results[1].activations[name])
        assert torch.allclose(results[0].gradients[name], results[1].gradients[name], atol=1e-6)
    assert torch.allclose(results[0].activations["0"], conv_out)


def test_hooks_removed_and_modes_restored_when_the_forward_raises():
    model = small_net(inplace=True).train()
    model[2].eval()  # a mixed state, which must come back exactly
    modes = [m.training for m in model.modules()]

    with pytest.raises(RuntimeError):
        with capture(model, ["0", "5"], gradients=True):
            assert not model.training and not model[3].training  # explanations run in eval mode
            model(torch.randn(2, 7, 8, 8))  # wrong channel count: the first conv raises
    assert hook_count(model) == 0
    assert [m.training for m in model.modules()] == modes


def test_unknown_layer_is_a_user_error_and_leaves_no_hook():
    model = small_net(inplace=False)
    with pytest.raises(UserError, match="explain layers"):
        with capture(model, ["0", "no.such.layer"]):
            pass
    assert hook_count(model) == 0


def test_layer_listing_and_conv_units():
    model = small_net(inplace=True)
    calls = probe_calls(model, 8)
    assert [c.name for c in calls] == [str(i) for i in range(9)]
    assert calls[0].kind == "Conv2d" and calls[0].shape == (4, 8, 8) and calls[0].parameters == 4 * 3 * 9 + 4
    units = conv_units(model, 8)
    assert [(u.conv, u.layer, u.channels, u.depth) for u in units] == [("0", "1", 4, 1), ("4", "5", 5, 2)]
    assert default_cam_layer(model, 8) == "5"
    assert hook_count(model) == 0 and model.training


class SharedReLU(nn.Module):
    """One ReLU module called twice, as in a ResNet block."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.relu = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.relu(self.conv2(self.relu(self.conv1(x)))) * 2).sum((1, 2, 3))


def test_a_module_called_twice_gives_its_last_call():
    torch.manual_seed(0)
    model = SharedReLU()
    x = torch.randn(2, 3, 5, 5)
    with capture(model, ["relu"], gradients=True) as cap:
        model(x).sum().backward()
    last = torch.relu(model.conv2(torch.relu(model.conv1(x))))
    assert torch.allclose(cap.activations["relu"], last)
    assert torch.allclose(cap.gradients["relu"], torch.full_like(last, 2.0))


class SqueezeExcite(nn.Module):
    """conv -> ReLU, then a gate from 1x1 convolutions on the pooled map (fully connected in disguise)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.act = nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()
        self.pool, self.fc1, self.fc_act, self.fc2, self.gate = (
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(4, 2, 1), nn.ReLU(), nn.Conv2d(2, 4, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act(self.conv(x))
        return a * self.gate(self.fc2(self.fc_act(self.fc1(self.pool(a)))))


def test_gate_convolutions_on_pooled_maps_are_not_units():
    assert [(u.conv, u.layer) for u in conv_units(SqueezeExcite(), 8)] == [("conv", "act")]


def test_default_cam_layer_is_the_deepest_with_maps_of_at_least_4x4():
    from cnnlab.models import create_model

    model = create_model("ahe_cnn", 10)
    assert default_cam_layer(model, 64) == "features.4.act"  # 4x4
    assert default_cam_layer(model, 32) == "features.3.act"  # the last block is 2x2 there
    assert conv_units(model, 32)[-1].size == (2, 2)
