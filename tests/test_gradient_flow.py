"""The gradient-flow experiment and its models: vanishing gradients in a deep sigmoid stack, none with
residual connections (on a fixed seed, with margins of orders of magnitude)."""

from __future__ import annotations

import csv

import pytest
import torch
from PIL import Image
from torch import nn

from cnnlab.cli.main import main
from cnnlab.errors import UserError
from cnnlab.models import create_model


def test_deep_models_have_depth_conv_layers_and_the_chosen_activation():
    plain = create_model("plain_cnn", 10, depth=7, width=4, activation="sigmoid", batchnorm=True)
    residual = create_model("residual_cnn", 10, depth=7, width=4)
    for model in (plain, residual):
        assert sum(isinstance(m, nn.Conv2d) for m in model.modules()) == 7
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert sum(isinstance(m, nn.Sigmoid) for m in plain.modules()) == 7
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == 7
    # With every residual branch's conv at zero, the stack is the stem alone (plus final BN/ReLU): the skip is there.
    for layer in residual.features[1:]:
        if hasattr(layer, "conv"):
            nn.init.zeros_(layer.conv.weight)
    residual.eval()
    x = torch.randn(2, 3, 16, 16)
    stem_only = residual.features[0](x)
    pooled = [m for m in residual.features if isinstance(m, nn.AvgPool2d)]
    for pool in pooled:
        stem_only = pool(stem_only)
    expected = residual.head(residual.features[-1](residual.features[-2](stem_only)))
    torch.testing.assert_close(residual(x), expected)
    with pytest.raises(UserError, match="depth and width must be at least 1"):
        create_model("plain_cnn", 10, depth=0)


def test_experiment_sigmoid_vanishes_and_residual_does_not(tmp_path, capsys):
    out = tmp_path / "flow"
    assert main(["experiment", "gradient-flow", "--depth", "20", "--width", "8", "--image-size", "16",
                 "--shapes-per-class", "4", "--epochs", "1", "--batch-size", "16",
                 "--variants", "plain_sigmoid", "residual_relu_bn", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0].split()[:2] == ["variant", "first-layer"] and "residual_relu_bn" in printed
    with open(out / "gradient_flow.csv", newline="") as f:
        table = {r["variant"]: {k: float(v) for k, v in r.items() if k != "variant"} for r in csv.DictReader(f)}
    sigmoid, residual = table["plain_sigmoid"], table["residual_relu_bn"]
    assert sigmoid["ratio_first_last"] < 1e-4  # orders of magnitude: about 1e-11 here
    assert 0.1 < residual["ratio_first_last"] < 10  # within an order of magnitude
    assert sigmoid["first_layer_grad_norm"] < 1e-4 * residual["first_layer_grad_norm"]
    for name in ("plain_sigmoid", "residual_relu_bn"):
        assert (out / name / "grad_norms.csv").is_file() and (out / name / "checkpoints" / "last.pt").is_file()
    with Image.open(out / "gradient_flow.png") as im:
        assert im.width > 600
    assert main(["experiment", "gradient-flow", "--output", str(out)]) == 2  # never over an earlier result
    assert "is not empty" in capsys.readouterr().err
