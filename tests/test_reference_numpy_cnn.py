"""The NumPy CNN against its PyTorch twin step by step, and evidence that it learns."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from threadpoolctl import threadpool_limits

from cnnlab.errors import UserError
from cnnlab.reference import SGD, SoftmaxCrossEntropy
from reference_cli import run_cli
from cnnlab.data.shapes import make_shapes
from cnnlab.reference.numpy_cnn import IMAGE_SIZE, build_numpy_cnn, split_images, train_numpy_cnn
from cnnlab.reference.twin import twin_losses


@pytest.fixture(autouse=True)
def single_threaded() -> Iterator[None]:
    """These are many small matrix products: with two BLAS/PyTorch threads each on a busy 2-core
    machine the threads mostly wait on each other (about 5x slower), so use one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def test_numpy_cnn_and_pytorch_twin_give_the_same_losses_for_20_sgd_steps() -> None:
    ours, theirs = twin_losses(load_shapes(n_per_class=17, seed=0, dtype=np.float64), steps=20, batch_size=8)
    assert len(ours) == len(theirs) == 20
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    assert len(set(np.round(ours, 6))) == 20  # the weights really moved: every step saw a new loss


def test_numpy_cnn_fits_a_fixed_batch() -> None:
    """Fast learning check: 30 SGD steps on 32 shapes images take the loss from chance (ln 10 = 2.3)
    to well below it and the batch accuracy (evaluation mode, running batch-norm statistics) far above
    10%."""
    split = load_shapes(n_per_class=4, seed=0, val_fraction=0.2)
    x, y = split.x_train, split.y_train
    model = build_numpy_cnn(np.random.default_rng(0))
    optimiser, loss_fn = SGD(model.parameters(), lr=0.05, momentum=0.9), SoftmaxCrossEntropy()
    losses = []
    for _ in range(30):
        logits = model.forward(x)
        losses.append(loss_fn.forward(logits, y))
        model.backward(loss_fn.backward())
        optimiser.step()
    model.eval()
    accuracy = (model.forward(x).argmax(axis=1) == y).mean()
    assert losses[0] > 2.0 and losses[-1] < 0.5 * losses[0]
    assert accuracy >= 0.8


def test_train_numpy_command_prints_epochs(capsys) -> None:
    assert run_cli(["train-numpy", "--epochs", "2", "--n-per-class", "3", "--batch-size", "8"]) == 0
    out = capsys.readouterr().out
    assert "24 training and 6 held-out images" in out
    assert "epoch   1  train loss" in out and "epoch   2" in out and "val acc" in out


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--lr", "-1"], ["--momentum", "1"], ["--batch-size", "0"]])
def test_train_numpy_command_rejects_bad_settings(argv: list[str]) -> None:
    with pytest.raises(UserError):
        run_cli(["train-numpy", *argv])


@pytest.mark.slow
def test_numpy_cnn_generalises_to_held_out_shapes() -> None:
    split = load_shapes(n_per_class=200, seed=1)
    _, history = train_numpy_cnn(split, epochs=5, seed=1)
    assert history[-1].val_accuracy >= 0.5  # chance is 0.1; this run reaches about 0.77


def load_shapes(n_per_class: int, seed: int, val_fraction: float = 0.2, dtype: type = np.float32):
    shapes = make_shapes(n_per_class=n_per_class, image_size=IMAGE_SIZE, seed=seed)
    return split_images(shapes.images.numpy(), shapes.labels.numpy(), val_fraction, dtype)
