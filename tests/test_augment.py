"""Batched augmentation: each image its own parameters, reproducible, and each op doing what it says."""

from __future__ import annotations

import pytest
import torch

import torchvision.transforms.v2.functional as TF

from cnnlab.data.augment import PRESETS, AugmentConfig, ColourJitter, affine_grid, augment_batch, augment_config
from cnnlab.errors import UserError


def batch(n=8, seed=0):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_none_is_identity_and_each_preset_changes_images_more_than_the_last():
    x = batch()
    assert augment_batch(x, PRESETS["none"], torch.Generator()) is x
    # Smooth images (a 4x4 grid upsampled), so a geometric change moves pixels by more the stronger it is.
    smooth = torch.nn.functional.interpolate(batch(64, seed=1)[:, :, :4, :4], size=16, mode="bilinear",
                                             align_corners=False)
    change = [float((augment_batch(smooth.clone(), PRESETS[p], torch.Generator().manual_seed(0)) - smooth).abs().mean())
              for p in ("none", "light", "standard", "strong")]
    assert change[0] == 0 and change[1] > 0.1  # measured 0.137, 0.162, 0.194 for seed 0
    assert all(b > a + 0.01 for a, b in zip(change[1:], change[2:]))


def test_per_image_parameters_and_reproducible():
    x = batch(1).expand(6, 3, 16, 16).contiguous()
    cfg = PRESETS["strong"]
    out = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(1))
    assert not torch.allclose(out[0], out[1])  # same input image, different random parameters
    again = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert out.min() >= 0 and out.max() <= 1


def test_certain_hflip_mirrors_exactly():
    x = batch()
    out = augment_batch(x.clone(), AugmentConfig(hflip=1.0), torch.Generator())
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)
    out = augment_batch(x.clone(), AugmentConfig(vflip=1.0), torch.Generator())
    torch.testing.assert_close(out, x.flip(-2), atol=1e-5, rtol=0)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = batch() * 0.5 + 0.25
    out = augment_batch(x.clone(), AugmentConfig(brightness=0.3), torch.Generator().manual_seed(0))
    ratio = out / x
    per_image = ratio.flatten(1)
    assert torch.allclose(per_image, per_image[:, :1].expand_as(per_image), atol=1e-5)
    assert ((per_image[:, 0] >= 0.7 - 1e-6) & (per_image[:, 0] <= 1.3 + 1e-6)).all()
    assert per_image[:, 0].std() > 0.01


def test_noise_std_bounded_and_hue_keeps_grey_grey():
    x = torch.full((64, 3, 16, 16), 0.5)
    out = augment_batch(x.clone(), AugmentConfig(noise=0.05), torch.Generator().manual_seed(0))
    std = (out - x).flatten(1).std(1)
    assert std.max() < 0.06 and std.mean() > 0.01
    out = augment_batch(x.clone(), AugmentConfig(hue=0.5, saturation=0.5), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, atol=1e-5, rtol=0)  # grey has no hue or saturation to change


def test_colour_jitter_matches_torchvision_image_by_image():
    """The fused per-image colour matrix equals torchvision's brightness, contrast and saturation ops
    applied one image at a time in the same order (inputs kept where no step clips)."""
    x = batch(6) * 0.2 + 0.4
    cfg = AugmentConfig(brightness=0.2, contrast=0.3, saturation=0.5)
    jitter = ColourJitter.draw(len(x), cfg, torch.Generator().manual_seed(3), x.device)
    assert jitter.saturation.std() > 0.05  # really different per image
    out = jitter.apply(x)
    for i in range(len(x)):
        ref = TF.adjust_brightness(x[i], float(jitter.brightness[i]))
        ref = TF.adjust_contrast(ref, float(jitter.contrast[i]))
        ref = TF.adjust_saturation(ref, float(jitter.saturation[i]))
        torch.testing.assert_close(out[i], ref, atol=2e-4, rtol=0)  # torchvision's luma weight 0.2989, ours 0.299


def test_geometric_ops_keep_shape_and_change_pixels():
    x = batch()
    cfg = AugmentConfig(rotation=30, zoom=0.2, translate=0.1)
    out = augment_batch(x.clone(), cfg, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and not torch.allclose(out, x, atol=1e-2)


def test_overrides_and_unknown_names():
    cfg = augment_config("light", {"rotation": 45, "vflip": 0.5})
    assert cfg.rotation == 45 and cfg.vflip == 0.5 and cfg.hflip == PRESETS["light"].hflip
    with pytest.raises(UserError, match="unknown augmentation 'rotate'"):
        augment_config("light", {"rotate": 1})
    with pytest.raises(UserError, match="unknown augmentation preset"):
        augment_config("heavy")


def test_affine_grid_equals_torch_affine_grid_for_non_square_images():
    theta = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(0))
    ours = affine_grid(theta, 7, 11)
    torchs = torch.nn.functional.affine_grid(theta, [5, 3, 7, 11], align_corners=False)
    assert ours.shape == torchs.shape == (5, 7, 11, 2)
    assert torch.allclose(ours, torchs, atol=1e-6)
