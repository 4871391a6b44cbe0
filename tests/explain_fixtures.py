"""One small CNN trained once on ``shapes`` and shared by every explain test that needs a trained model.

Training is most of the explain tests' time, so it happens once per pytest session however many test
modules import these fixtures (``functools.cache`` on the training function: pytest would otherwise
build a session fixture once per importing module). ``ahe_cnn`` learns ``shapes`` too slowly on two CPU
cores for a test, so the model here is registered for the tests: the same conv-BN-ReLU(-max pool)
blocks with the same layer names (``features.N.conv/bn/act/pool``), 16-64 channels, and a global
average pool + linear head.

Everything runs on one thread: these convolutions are too small to gain from a second one, and on a
machine shared with other jobs two threads each spin-waiting for the other are many times slower.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.data.imageset import ImageSet
from cnnlab.models import register_model
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.run import LoadedRun, load_run

WIDTHS = (16, 32, 64, 64)
POOLED = (True, True, True, False)  # 48 px input -> 24 -> 12 -> 6: the last block (the Grad-CAM layer) is 6x6
# 48 px and 300 images a class: Grad-CAM's pointing game measured 0.880, 0.890 and 0.895 for seeds 0-2,
# against 0.842-0.860 at 32 px (4x4 maps) and 0.795-0.870 at 32 px with an unpooled 8x8 last block.
SETTINGS = dict(model="explain_test_cnn", shapes_per_class=300, image_size=48, epochs=12, batch_size=32, lr=3e-3,
                schedule="onecycle", augment="light", seed=0)


@register_model("explain_test_cnn", default_image_size=32, min_image_size=16)
def explain_test_cnn(num_classes: int) -> nn.Module:
    """Four conv-BN-ReLU blocks (16-32-64-64, max pool after the first three), global average pool, linear (tests only)."""
    blocks, channels = [], 3
    for width, pooled in zip(WIDTHS, POOLED):
        layers: list[tuple[str, nn.Module]] = [("conv", nn.Conv2d(channels, width, 3, padding=1, bias=False)),
                                               ("bn", nn.BatchNorm2d(width)), ("act", nn.ReLU())]
        if pooled:
            layers.append(("pool", nn.MaxPool2d(2)))
        blocks.append(nn.Sequential(OrderedDict(layers)))
        channels = width
    return nn.Sequential(OrderedDict([("features", nn.Sequential(*blocks)), ("gap", nn.AdaptiveAvgPool2d(1)),
                                      ("flatten", nn.Flatten()), ("fc", nn.Linear(channels, num_classes))]))


@functools.cache
def _trained_run_dir(base: Path) -> Path:
    from cnnlab.train.trainer import Trainer

    with one_thread():
        return Trainer(TrainConfig(output=str(base / "explain-shapes-run"), **SETTINGS)).fit()


@pytest.fixture(scope="session")
def shapes_run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run directory of the trained model (config, split lists, checkpoints)."""
    return _trained_run_dir(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def shapes_run(shapes_run_dir: Path) -> LoadedRun:
    return load_run(shapes_run_dir)


@pytest.fixture(scope="session")
def shapes_val(shapes_run: LoadedRun) -> ImageSet:
    """The run's validation images, with their object masks."""
    from cnnlab.runs.evaluate import evaluation_images

    images = evaluation_images(shapes_run, None).images
    assert images.masks is not None
    return images


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    with one_thread():
        yield


@contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread, then restore the previous count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
