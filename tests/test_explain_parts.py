"""The pieces of class-model images and selectivity, checked on inputs whose answer is known."""

from __future__ import annotations

import math

import torch
from torch import nn

from cnnlab.data.imageset import ImageSet
from cnnlab.data.normalize import Normalization
from cnnlab.explain.dream import dream, high_frequency_energy, recipe, total_variation
from cnnlab.explain.params import FourierImage, PixelImage
from cnnlab.explain.selectivity import class_means, measure_selectivity, selectivity_index
from cnnlab.explain.targets import ClassTarget
from cnnlab.explain.transforms import RandomAffine


def test_selectivity_index_of_known_units():
    means = torch.tensor([
        [0.0, 0.0, 0.0],  # dead: 0 by definition
        [2.0, 2.0, 2.0],  # every class alike: 0
        [3.0, 0.0, 0.0],  # one class only: 1
        [3.0, 1.0, 1.0],  # (3 - 1) / (3 + 1)
        [3.0, -1.0, -1.0],  # negative means count as 0 (non-ReLU activations): 1
    ])
    assert torch.allclose(selectivity_index(means), torch.tensor([0.0, 0.0, 1.0, 0.5, 1.0]))


def test_class_means_average_each_class_and_leave_empty_classes_at_zero():
    acts = torch.tensor([[1.0, 0.0], [3.0, 2.0], [5.0, 4.0]])
    means = class_means(acts, torch.tensor([0, 0, 2]), 3)
    assert torch.allclose(means, torch.tensor([[2.0, 0.0, 5.0], [1.0, 0.0, 4.0]]))


def test_measure_selectivity_reads_the_activation_after_each_conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1)).eval()
    images = ImageSet(torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8), torch.tensor([0, 1, 0, 1, 0, 1]),
                      [str(i) for i in range(6)], ["a", "b"])
    layers = measure_selectivity(model, images, Normalization((0.5,) * 3, (0.25,) * 3), 8, torch.device("cpu"))
    assert [(s.units.conv, s.units.layer) for s in layers] == [("0", "2"), ("3", "3")]  # the last conv: no activation
    x = (images.images.float() / 255 - 0.5) / 0.25
    expected = model[2](model[1](model[0](x))).mean((2, 3))
    assert torch.allclose(layers[0].activations, expected, atol=1e-5)
    assert layers[0].class_means.shape == (4, 2) and layers[0].summary()["units"] == 4


def test_high_frequency_energy_separates_noise_from_smooth_images():
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(4, 3, 32, 32, generator=g)
    wave = (0.5 + 0.4 * torch.cos(torch.arange(32) * 2 * math.pi / 32)).view(1, 1, 1, 32).expand(4, 3, 32, 32)
    hf_noise, hf_wave = high_frequency_energy(noise), high_frequency_energy(wave)
    assert ((hf_noise - (1 - math.pi * 0.25**2)).abs() < 0.06).all()  # white noise: the area outside the radius
    assert (hf_wave < 1e-6).all()  # one period across the image: the lowest frequency only
    assert torch.equal(high_frequency_energy(torch.full((1, 3, 8, 8), 0.3)), torch.zeros(1))
    assert (total_variation(noise) > total_variation(wave)).all()


def test_fourier_image_reproduces_a_given_image_and_stays_valid():
    img = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.9 + 0.05
    assert torch.allclose(FourierImage.from_image(img)(), img, atol=1e-4)
    noisy = FourierImage.noise(2, 16, torch.Generator().manual_seed(0))()
    assert noisy.shape == (2, 3, 16, 16) and 0 < noisy.min() and noisy.max() < 1
    pixels = PixelImage(torch.full((1, 3, 4, 4), 1.5))
    assert pixels().max() == 1.0


def test_random_affine_without_change_is_the_identity():
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(RandomAffine(0, 0, 0)(x, torch.Generator()), x, atol=1e-5)
    moved = RandomAffine()(x, torch.Generator().manual_seed(0))
    assert moved.shape == x.shape and not torch.allclose(moved, x)


def test_dream_leaves_the_model_untouched_and_raises_the_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    norm = Normalization((0.5,) * 3, (0.25,) * 3)
    targets = [ClassTarget(0), ClassTarget(2)]
    start = dream(model, norm, targets, 8, recipe("plain", 1))
    result = dream(model, norm, targets, 8, recipe("plain", 60))
    assert (result.scores > start.scores).all()
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
