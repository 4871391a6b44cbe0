"""Explanations of a model trained on ``shapes``, scored against what is known about the images.

The numbers each test measured are printed (visible with ``pytest -s``).
"""

from __future__ import annotations

import pytest
import torch
from explain_fixtures import shapes_run, shapes_run_dir, shapes_val, single_thread  # noqa: F401

from cnnlab.explain.cam import GradCAM, GradCAMPlusPlus, pointing_game
from cnnlab.explain.dream import RECIPES, dream, recipe
from cnnlab.explain.layers import conv_units, default_cam_layer
from cnnlab.explain.selectivity import measure_selectivity
from cnnlab.explain.targets import ClassTarget, FilterTarget
from cnnlab.data.batch import prepare

DREAM_STEPS = 300  # the same budget for both recipes


@pytest.fixture(scope="module")
def pointing(shapes_run, shapes_val) -> dict[str, torch.Tensor]:  # noqa: F811
    """Pointing-game hits per validation image: Grad-CAM and Grad-CAM++ of the predicted class at the
    default layer, strict and with the original game's tolerance, and for random maps."""
    x = prepare(shapes_val.images, shapes_run.norm, torch.device("cpu"))
    layer = default_cam_layer(shapes_run.model, shapes_run.image_size)
    cam = GradCAM(shapes_run.model, layer)(x)
    plus = GradCAMPlusPlus(shapes_run.model, layer)(x)
    random_maps = torch.rand(cam.maps.shape, generator=torch.Generator().manual_seed(0))
    tolerance = shapes_run.image_size * 15 / 224
    hits = {
        "gradcam": pointing_game(cam.maps, shapes_val.masks),
        "gradcam++": pointing_game(plus.maps, shapes_val.masks),
        "random": pointing_game(random_maps, shapes_val.masks),
        "gradcam, tolerance": pointing_game(cam.maps, shapes_val.masks, tolerance),
        "random, tolerance": pointing_game(random_maps, shapes_val.masks, tolerance),
    }
    accuracy = (cam.logits.argmax(1) == shapes_val.labels).float().mean()
    print(f"\npointing game, {len(x)} validation images, layer {layer}, accuracy {accuracy:.3f}, tolerance "
          f"{tolerance:.1f} px: " + ", ".join(f"{k} {v.float().mean():.3f}" for k, v in hits.items()))
    print("Grad-CAM per class: " + ", ".join(f"{c} {hits['gradcam'][shapes_val.labels == k].float().mean():.2f}"
                                             for k, c in enumerate(shapes_val.classes)))
    return {k: v.float() for k, v in hits.items()}


def test_gradcam_maximum_lies_on_the_object_for_85_percent(pointing):
    assert pointing["gradcam"].mean() >= 0.85


def test_gradcam_points_at_the_object_far_better_than_random_maps(pointing):
    assert pointing["gradcam"].mean() >= 0.7
    assert pointing["random"].mean() <= pointing["gradcam"].mean() - 0.4
    assert pointing["gradcam, tolerance"].mean() >= 0.85  # the original game's 15 px at 224 px, scaled
    assert pointing["random, tolerance"].mean() <= pointing["gradcam, tolerance"].mean() - 0.4


def test_filter_gradcam_differs_between_filters_of_a_trained_layer(shapes_run, shapes_val):
    units = conv_units(shapes_run.model, shapes_run.image_size)
    x = prepare(shapes_val.images[:16], shapes_run.norm, torch.device("cpu"))
    cam = GradCAM(shapes_run.model, units[1].layer)
    maps = [cam(x, FilterTarget(units[-1].layer, k)).maps for k in range(4)]
    for i in range(4):
        for j in range(i + 1, 4):
            assert (maps[i] - maps[j]).abs().mean() > 0.02


def test_regularized_class_images_are_confident_and_smoother_than_plain(shapes_run):
    targets = [ClassTarget(k) for k in range(len(shapes_run.classes))]
    size = shapes_run.image_size
    results = {m: dream(shapes_run.model, shapes_run.norm, targets, size, recipe(m, DREAM_STEPS)) for m in RECIPES}
    k = torch.arange(len(targets))
    for name, r in results.items():
        print(f"\n{name} ({DREAM_STEPS} steps, {r.seconds:.1f}s): probability "
              + " ".join(f"{p:.3f}" for p in r.probabilities[k, k]) + " | high-frequency "
              + " ".join(f"{h:.3f}" for h in r.high_frequency))
    regularized, plain = results["regularized"], results["plain"]
    assert (regularized.probabilities[k, k] >= 0.9).all()
    assert (regularized.high_frequency < plain.high_frequency).all()
    assert regularized.images.shape == (len(targets), 3, size, size)
    assert regularized.images.min() >= 0 and regularized.images.max() <= 1


def test_last_conv_layer_is_more_class_selective_than_the_first(shapes_run, shapes_val):
    torch.manual_seed(0)
    layers = measure_selectivity(shapes_run.model, shapes_val, shapes_run.norm, shapes_run.image_size,
                                 torch.device("cpu"))
    medians = [float(layer.index.median()) for layer in layers]
    print("\nmedian selectivity by depth: " + ", ".join(f"{layer.units.layer} {m:.3f}" for layer, m in zip(layers, medians)))
    assert len(layers) == 4 and all(0 <= float(layer.index.min()) and float(layer.index.max()) <= 1 for layer in layers)
    assert medians[-1] > medians[0]
