"""--log-grad-norms: logged norms equal gradients computed by hand (also across an accumulation window and
under bf16), the update ratio is what SGD did, and the CSV and figure land in the run directory."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli.main import main
from cnnlab.data.batch import prepare
from cnnlab.errors import UserError
from cnnlab.models import create_model
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.grad_flow import read_grad_norms
from cnnlab.train.trainer import Trainer

from test_accumulate import _bundle

LR = 0.1


def _train(tmp_path, name: str, **kw) -> Trainer:
    cfg = TrainConfig(model="tiny_test", epochs=1, optimizer="sgd", momentum=0.0, weight_decay=0.0, lr=LR,
                      schedule="none", augment="none", channels_last=False, log_grad_norms=1,
                      output=str(tmp_path / name), **kw)
    trainer = Trainer.from_config(cfg, data=_bundle(12))
    trainer.fit()
    return trainer


def _by_hand(trainer: Trainer) -> tuple[nn.Module, dict[str, float]]:
    """The first step's gradient: the mean loss over all 12 training images (one window), per layer."""
    model = create_model("tiny_test", 3)  # the builder seeds itself: the trainer's initial weights
    x = prepare(trainer.data.train.images, trainer.norm, torch.device("cpu"))
    nn.functional.cross_entropy(model(x), trainer.data.train.labels).backward()
    norms = {name: torch.cat([p.grad.flatten() for p in m.parameters(recurse=False)]).norm().item()
             for name, m in model.named_modules() if list(m.parameters(recurse=False))}
    return model, norms


@pytest.mark.parametrize("batch_size, accumulate", [(12, 1), (4, 3), (5, 3)])
def test_logged_norms_equal_the_whole_windows_gradient_by_hand(tmp_path, batch_size, accumulate):
    trainer = _train(tmp_path, f"b{batch_size}k{accumulate}", batch_size=batch_size, accumulate=accumulate)
    rows = [r for r in read_grad_norms(trainer.run_dir) if r["step"] == 1]
    model, expected = _by_hand(trainer)
    assert [r["layer"] for r in rows] == ["0", "4"] and [r["depth"] for r in rows] == [1, 2]
    for r in rows:
        assert r["grad_norm"] == pytest.approx(expected[r["layer"]], rel=1e-5)
        weights = torch.cat([p.flatten() for p in model.get_submodule(r["layer"]).parameters()]).norm().item()
        assert r["weight_norm"] == pytest.approx(weights, rel=1e-6)
        assert r["update_ratio"] == pytest.approx(LR * r["grad_norm"] / weights, rel=1e-4)  # plain SGD: lr * grad


def test_bf16_norms_are_float32_numbers_close_to_the_float32_run(tmp_path):
    fp32 = read_grad_norms(_train(tmp_path, "fp32", batch_size=4, accumulate=3).run_dir)
    bf16 = read_grad_norms(_train(tmp_path, "bf16", batch_size=4, accumulate=3, bf16=True).run_dir)
    assert len(fp32) == len(bf16) > 0
    for a, b in zip(fp32, bf16):
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=0.05) and b["grad_norm"] != a["grad_norm"]


def test_every_n_steps_figure_and_resume_keep_the_rows(tmp_path):
    run = tmp_path / "r"
    args = ["train", "--model", "plain_cnn", "--model-option", "depth=4", "--model-option", "width=4",
            "--image-size", "16", "--shapes-per-class", "4", "--batch-size", "4", "--augment", "none",
            "--log-grad-norms", "3", "--output", str(run)]
    assert main([*args, "--epochs", "1"]) == 0  # 32 training images: 8 steps, logged at 1, 4, 7
    rows = read_grad_norms(run)
    assert sorted({r["step"] for r in rows}) == [1, 4, 7]
    assert [(r["kind"], r["depth"]) for r in rows if r["step"] == 1] == [("Conv2d", d) for d in (1, 2, 3, 4)] + [("Linear", 5)]
    with Image.open(run / "grad_flow.png") as im:
        assert im.width > 800
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 0
    assert sorted({r["step"] for r in read_grad_norms(run)}) == [1, 4, 7, 10, 13, 16]


def test_negative_interval_is_a_user_error():
    with pytest.raises(UserError, match="--log-grad-norms must be an integer of at least 0, not -1"):
        TrainConfig(log_grad_norms=-1).validate()
