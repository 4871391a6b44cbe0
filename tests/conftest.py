"""Shared fixtures: the shared data folder (tests needing it skip where it is absent) and a tiny
BatchNorm-free, dropout-free model registered for tests that need exact arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.models import register_model
from cnnlab.models.layers import AdaptiveAvgPool

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
AHE_TRAIN = SHARED / "data" / "ahe" / "64x64" / "train"


@register_model("tiny_test", default_image_size=16, min_image_size=8)
def tiny_test(num_classes: int) -> nn.Module:
    """Tiny conv net without BatchNorm or dropout (tests only)."""
    torch.manual_seed(123)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), AdaptiveAvgPool(2), nn.Flatten(), nn.Linear(16, num_classes)
    )


@pytest.fixture
def ahe_train() -> Path:
    if not AHE_TRAIN.is_dir():
        pytest.skip(f"AHE training images not found at {AHE_TRAIN} (the ../shared folder is absent in a user's clone)")
    return AHE_TRAIN


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """A private, empty torch hub cache, and no network: tests never download weights."""
    from cnnlab.models import weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv(weights.OFFLINE_ENV, "1")
    monkeypatch.delenv(weights.MIRROR_ENV, raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"

