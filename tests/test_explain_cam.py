"""Grad-CAM and Grad-CAM++ against hand computations on a tiny model, for class and filter targets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import UserError
from cnnlab.explain.cam import CAM_METHODS, GradCAM, GradCAMPlusPlus, pointing_game, upsample_and_scale
from cnnlab.explain.targets import ClassTarget, FilterTarget


def tiny() -> nn.Sequential:
    """conv 3x3 (3->4) -> ReLU -> conv 1x1 (4->3) -> ReLU -> global mean -> linear (3->2)."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2),
    ).eval()


def test_filter_gradcam_equals_hand_computation():
    model, x = tiny(), torch.randn(3, 3, 6, 6)
    a1 = F.relu(model[0](x))  # the CAM layer "1"
    hw = a1.shape[2] * a1.shape[3]
    for k in range(3):
        # score = mean over positions of conv2 filter k = b_k + sum_c w[k, c] mean(A1_c), so
        # dScore/dA1_c(i, j) = w[k, c] / hw everywhere, and the pooled weights are w[k, c] / hw.
        w = model[2].weight[k, :, 0, 0].detach() / hw
        expected = F.relu((w[None, :, None, None] * a1).sum(1)).detach()
        result = GradCAM(model, "1")(x, FilterTarget("2", k))
        assert torch.allclose(result.weights, w.expand(3, -1), atol=1e-7)
        assert torch.allclose(result.raw, expected, atol=1e-6)
        assert torch.allclose(result.scores, model[2](a1)[:, k].mean((1, 2)).detach(), atol=1e-6)


def test_filter_of_the_cam_layer_itself_gives_its_own_rectified_map():
    model, x = tiny(), torch.randn(2, 3, 6, 6)
    a1 = F.relu(model[0](x)).detach()
    result = GradCAM(model, "1")(x, FilterTarget("1", 2))
    assert torch.allclose(result.raw, a1[:, 2] / 36, atol=1e-7)


def test_filter_gradcam_differs_between_filters():
    model, x = tiny(), torch.randn(2, 3, 6, 6)
    maps = [GradCAM(model, "1")(x, FilterTarget("2", k)).raw for k in range(3)]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.allclose(maps[i], maps[j], atol=1e-4)


def test_class_gradcam_equals_hand_computation_and_defaults_to_the_prediction():
    model, x = tiny(), torch.randn(4, 3, 6, 6)
    a3 = F.relu(model[2](F.relu(model[0](x)))).detach()  # CAM layer "3", followed by mean + linear
    logits = model(x).detach()
    result = GradCAM(model, "3")(x)  # no target: the predicted class of each image
    w = model[6].weight.detach()[logits.argmax(1)] / 36  # CAM: linear weights of the class, over hw
    assert torch.allclose(result.raw, F.relu((w[:, :, None, None] * a3).sum(1)), atol=1e-6)
    assert [t.index for t in result.targets] == logits.argmax(1).tolist()
    assert torch.allclose(result.scores, logits.max(1).values, atol=1e-6)


@pytest.mark.parametrize("method", CAM_METHODS)  # every registered method, a new one included
def test_batched_equals_one_image_at_a_time_with_per_image_targets(method):
    model, x = tiny(), torch.randn(4, 3, 6, 6)
    targets = [ClassTarget(0), FilterTarget("2", 1), ClassTarget(1), ClassTarget(0)]
    batch = CAM_METHODS[method](model, "1")(x, targets)
    assert batch.maps.shape == (4, 6, 6) and batch.maps.min() >= 0 and batch.maps.max() <= 1
    for i, t in enumerate(targets):
        one = CAM_METHODS[method](model, "1")(x[i : i + 1], t)
        assert torch.allclose(batch.raw[i], one.raw[0], atol=1e-6)
        assert torch.allclose(batch.maps[i], one.maps[0], atol=1e-5)


def test_gradcam_plus_plus_weights_follow_the_formula():
    model, x = tiny(), torch.randn(2, 3, 6, 6)
    a3 = F.relu(model[2](F.relu(model[0](x)))).detach()
    g = (model[6].weight.detach()[0] / 36)[None, :, None, None].expand_as(a3)  # constant gradient per channel
    alpha = g**2 / (2 * g**2 + a3.sum((2, 3), keepdim=True) * g**3)
    expected = (alpha * F.relu(g)).sum((2, 3))
    result = GradCAMPlusPlus(model, "3")(x, ClassTarget(0))
    assert torch.allclose(result.weights, expected, rtol=1e-5, atol=1e-8)


def test_maps_are_upsampled_and_scaled_to_one():
    model, x = tiny(), torch.randn(2, 3, 6, 6)
    result = GradCAM(model, "1")(x, FilterTarget("1", 0))
    assert result.maps.shape == (2, 6, 6)
    assert torch.allclose(result.maps.flatten(1).amax(1), torch.ones(2))
    assert torch.equal(upsample_and_scale(torch.zeros(1, 3, 3), (6, 6)), torch.zeros(1, 6, 6))


@pytest.mark.parametrize("method", CAM_METHODS)
def test_the_model_and_its_gradients_are_left_as_they_were(method):
    model = tiny().train()
    CAM_METHODS[method](model, "1")(torch.randn(2, 3, 6, 6))
    assert model.training and all(p.grad is None for p in model.parameters())


def test_bad_filter_is_a_user_error():
    with pytest.raises(UserError, match="has 4 filters"):
        GradCAM(tiny(), "1")(torch.randn(1, 3, 6, 6), FilterTarget("1", 4))


def test_pointing_game_counts_the_maximum_inside_the_mask():
    maps = torch.zeros(2, 4, 4)
    maps[0, 1, 2] = 1.0
    maps[1, 3, 3] = 1.0
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[:, :2, :] = True
    assert pointing_game(maps, masks).tolist() == [True, False]


def test_pointing_game_tolerance_and_flat_maxima():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    near = torch.zeros(1, 8, 8)
    near[0, 0, 3] = 1.0  # two pixels above the mask
    assert not pointing_game(near, masks) and not pointing_game(near, masks, tolerance=1.5)
    assert pointing_game(near, masks, tolerance=2.0)
    plateau = torch.zeros(1, 8, 8)
    plateau[0, 4, 0:5] = 1.0  # a flat maximum from the border into the mask: its middle counts
    assert pointing_game(plateau, masks)
