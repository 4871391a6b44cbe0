"""EMA of weights, mixup/cutmix, progressive resizing, test-time augmentation and ensembles, each on
tiny data: the numbers against independent computations, resume, and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ctrl_c import ctrl_c_cli_run
from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.runs.config import TrainConfig
from cnnlab.runs.ensemble import ensemble_probs
from cnnlab.runs.inference import predict_logits
from cnnlab.runs.run import LoadedRun, load_run
from cnnlab.runs.tta import predict_probs
from cnnlab.train.mixing import Mixing
from histories import history_without_timing
from web_fixtures import write_folder

DATA = ["--model", "tiny_test", "--shapes-per-class", "6"]
TINY = [*DATA, "--image-size", "16", "--batch-size", "16", "--seed", "1"]


def test_ema_equals_the_hand_computed_average_after_three_steps(tmp_path):
    from cnnlab.train.trainer import Trainer

    # 5 shapes x 10 classes, one of each class for validation: 40 training images = 3 steps (16, 16, 8).
    cfg = TrainConfig(model="tiny_test", shapes_per_class=5, image_size=16, batch_size=16, epochs=1, ema=0.6,
                      augment="none", output=str(tmp_path / "run"))
    trainer = Trainer(cfg)
    assert trainer.steps_per_epoch == 3
    weights = [{k: v.clone() for k, v in trainer.model.state_dict().items()}]
    update = trainer.ema.update

    def record(model):
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        update(model)

    trainer.ema.update = record
    trainer.fit()
    assert len(weights) == 4  # the starting weights and one set after each of the 3 steps
    for k, averaged in trainer.ema.model.state_dict().items():
        expected = weights[0][k]
        for step, w in enumerate(weights[1:], start=1):
            d = min(0.6, (1 + step) / (10 + step))  # warm-up: 2/11, 3/12, 4/13
            expected = d * expected + (1 - d) * w[k]
        torch.testing.assert_close(averaged, expected)
        assert not torch.equal(averaged, weights[-1][k])
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(saved["ema"][k], v.cpu()) for k, v in trainer.ema.model.state_dict().items())
    row = trainer.history[-1]
    assert saved["serve"] == ("ema" if row["val_ema_accuracy"] > row["val_accuracy"] else "model")


def test_best_checkpoint_serves_the_ema_weights_when_they_validate_better(tmp_path, monkeypatch):
    from cnnlab.train.trainer import Trainer

    original = Trainer.validate

    def ema_always_better(self, model=None):
        metrics = original(self, model)
        return {**metrics, "accuracy": 0.9} if model is not None else {**metrics, "accuracy": 0.1}

    monkeypatch.setattr(Trainer, "validate", ema_always_better)
    run = tmp_path / "run"
    Trainer(TrainConfig(model="tiny_test", shapes_per_class=6, image_size=16, batch_size=16, epochs=1, ema=0.9,
                        output=str(run))).fit()
    loaded = load_run(run, "best")
    ckpt = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=True)
    assert loaded.weights == "ema" and ckpt["best"]["value"] == 0.9
    assert all(torch.equal(v, ckpt["ema"][k]) for k, v in loaded.model.state_dict().items())


def test_mixup_blends_pairs_and_its_targets_sum_to_one():
    x = torch.rand(6, 3, 8, 8)
    y = torch.tensor([0, 1, 2, 3, 4, 1])
    mixed, targets = Mixing(mixup=0.4).apply(x, y, 5, torch.Generator().manual_seed(0))
    assert targets.shape == (6, 5)
    torch.testing.assert_close(targets.sum(1), torch.ones(6))
    lam = float(targets[0, 0])  # image 0 (class 0) is paired with image 5 (class 1)
    assert 0 < lam < 1 and float(targets[0, 1]) == pytest.approx(1 - lam)
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))
    again = Mixing(mixup=0.4).apply(x, y, 5, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], mixed)  # all randomness from the generator


def test_cutmix_target_share_is_the_share_of_pixels_kept():
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 10, 10).contiguous()  # image i is all i
    y = torch.tensor([0, 1, 2, 3])
    for seed in range(5):
        mixed, targets = Mixing(cutmix=1.0).apply(x, y, 4, torch.Generator().manual_seed(seed))
        torch.testing.assert_close(targets.sum(1), torch.ones(4))
        for i in range(4):
            kept = (mixed[i] == i).float().mean()
            assert float(targets[i, i]) == pytest.approx(float(kept))


def test_mixing_probability_zero_and_one():
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    out, target = Mixing(mixup=1.0, cutmix=1.0, prob=0.0).apply(x, y, 4, torch.Generator().manual_seed(0))
    assert out is x and target is y
    mixed = [Mixing(mixup=1.0, cutmix=1.0).apply(x, y, 4, torch.Generator().manual_seed(s))[1].ndim for s in range(8)]
    assert mixed == [2] * 8


def test_progressive_resizing_switches_at_the_stated_epoch_and_resumes(tmp_path, monkeypatch):
    flags = [*DATA, "--image-size", "12:16", "--size-epochs", "2", "--epochs", "3", "--batch-size", "16",
             "--ema", "0.5", "--mixup", "0.4", "--cutmix", "1.0", "--mix-prob", "0.7", "--augment", "light"]
    whole = tmp_path / "whole"
    assert main(["train", *flags, "--output", str(whole)]) == 0
    history = history_without_timing(whole)
    assert [r["image_size"] for r in history] == [12, 12, 16]
    assert torch.load(whole / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["image_size"] == 16

    run = tmp_path / "resumed"
    assert ctrl_c_cli_run(monkeypatch, ["train", *flags, "--output", str(run)], epoch=1) == 130
    assert main(["train", "--resume", str(run)]) == 0
    assert history_without_timing(run) == history
    a = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(whole / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])


def test_a_checkpoint_from_an_earlier_size_evaluates_as_it_validated(tmp_path, monkeypatch):
    # 32 px files trained at 24 then 40 px (upsampled, as AHE's 64 px photos are): the 24 px images must be
    # decoded at 24 px, as evaluate and predict decode them, not resized from the 40 px ones.
    folder = write_folder(tmp_path / "data")
    run = tmp_path / "run"
    flags = ["--data", str(folder), "--model", "tiny_test", "--image-size", "24:40", "--size-epochs", "1", "--epochs", "2",
             "--batch-size", "8", "--augment", "none", "--seed", "0", "--output", str(run)]
    assert ctrl_c_cli_run(monkeypatch, ["train", *flags], epoch=1) == 130
    assert main(["evaluate", str(run), "--checkpoint", "last"]) == 0
    validated = json.loads((run / "history.json").read_text())[0]
    evaluated = json.loads((run / "evaluation" / "val" / "metrics.json").read_text())["metrics"]
    assert validated["image_size"] == 24
    assert evaluated["loss"] == pytest.approx(validated["val_loss"], rel=1e-5)
    assert evaluated["accuracy"] == pytest.approx(validated["val_accuracy"])


def test_files_that_change_between_sizes_stop_the_run_with_a_clear_error(tmp_path):
    from cnnlab.train.trainer import Trainer

    folder = write_folder(tmp_path / "data")
    cfg = TrainConfig(data=str(folder), model="tiny_test", image_size="16:24:40", size_epochs="1:2", epochs=3,
                      batch_size=8, augment="none", output=str(tmp_path / "run"))
    trainer = Trainer.from_config(cfg)
    a_square = sorted((folder / "square").glob("*.png"))[0]
    (folder / "square" / "square-extra.png").write_bytes(a_square.read_bytes())
    with pytest.raises(UserError, match="changed during training"):
        trainer.fit()


@pytest.mark.parametrize("flags, message", [
    (["--image-size", "12:x"], "sizes joined by ':'"),
    (["--image-size", "12:16", "--size-epochs", "3:4"], "must give 1 increasing epoch"),
    (["--ema", "1.5"], "--ema must be a decay in [0, 1)"),
    (["--mixup", "-1"], "--mixup must be 0 (off) or a positive"),
])
def test_bad_settings_are_one_line_errors(flags, message, capsys):
    assert main(["train", *TINY, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


class FlipSymmetric(nn.Module):
    """f(x) + f(mirror(x)): the same output for an image and its mirror."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.inner(x.flip(-1))


def _loaded(model: nn.Module, size: int = 10, classes: int = 5) -> LoadedRun:
    from cnnlab.data.normalize import Normalization

    model(torch.zeros(1, 3, size, size))  # materialise lazy layers
    return LoadedRun(None, model.eval(), TrainConfig(), [f"c{i}" for i in range(classes)],  # type: ignore[arg-type]
                     Normalization((0.5,) * 3, (0.25,) * 3), size, 1)


def test_flip_tta_of_a_flip_invariant_model_equals_the_plain_prediction():
    torch.manual_seed(0)
    run = _loaded(FlipSymmetric())
    images = torch.randint(0, 256, (7, 3, 10, 10), dtype=torch.uint8)
    plain = predict_probs(run, images, torch.device("cpu"), "none")
    torch.testing.assert_close(plain, predict_logits(run.model, images, run.norm, torch.device("cpu")).softmax(1))
    torch.testing.assert_close(predict_probs(run, images, torch.device("cpu"), "flip"), plain)
    scales = predict_probs(run, images, torch.device("cpu"), "flip+scales")
    torch.testing.assert_close(scales.sum(1), torch.ones(7))
    assert not torch.allclose(scales, plain)  # the zoomed views do change the prediction


def test_ensemble_averages_probabilities_and_checks_classes():
    torch.manual_seed(0)
    a, b = _loaded(FlipSymmetric()), _loaded(FlipSymmetric())
    images = torch.randint(0, 256, (4, 3, 10, 10), dtype=torch.uint8)
    cpu = torch.device("cpu")
    torch.testing.assert_close(ensemble_probs([a], [images], cpu), predict_probs(a, images, cpu))
    expected = (predict_probs(a, images, cpu) + predict_probs(b, images, cpu)) / 2
    torch.testing.assert_close(ensemble_probs([a, b], [images, images], cpu), expected)
    other = _loaded(FlipSymmetric(), classes=5)
    other.classes = list(reversed(other.classes))
    with pytest.raises(UserError, match="other classes"):
        ensemble_probs([a, other], [images, images], cpu)


def test_cli_ensemble_of_one_run_equals_that_run_and_sizes_may_differ(tmp_path, capsys):
    from PIL import Image

    small, large = tmp_path / "small", tmp_path / "large"
    assert main(["train", *TINY, "--epochs", "1", "--output", str(small)]) == 0
    assert main(["train", *TINY, "--image-size", "20", "--epochs", "1", "--output", str(large)]) == 0  # the last flag wins
    assert main(["evaluate", str(small)]) == 0
    single = json.loads((small / "evaluation" / "val" / "metrics.json").read_text())["metrics"]
    assert main(["evaluate", str(small), str(small)]) == 0
    twice = json.loads((small / "evaluation" / "val-ensemble2" / "metrics.json").read_text())["metrics"]
    assert twice == pytest.approx(single)
    assert main(["evaluate", str(small), str(large), "--tta", "flip"]) == 0
    assert "ensemble of 2 runs" in capsys.readouterr().out
    assert (small / "evaluation" / "val-tta-flip-ensemble2" / "metrics.json").is_file()

    image = tmp_path / "img.png"
    Image.new("RGB", (30, 30), (200, 40, 40)).save(image)
    capsys.readouterr()
    assert main(["predict", str(small), str(image), "--json"]) == 0
    one = json.loads(capsys.readouterr().out)  # one JSON line per image
    assert main(["predict", str(small), str(small), str(image), "--json"]) == 0
    twice = json.loads(capsys.readouterr().out)
    assert [t["class"] for t in twice["top"]] == [t["class"] for t in one["top"]]
    assert [t["probability"] for t in twice["top"]] == pytest.approx([t["probability"] for t in one["top"]])
    assert main(["predict", str(small), str(large), str(image), "--tta", "flip+scales"]) == 0
    assert capsys.readouterr().out.startswith(str(image) + ": ")


def test_the_ahe_recipe_files_are_valid_and_share_one_split():
    """The recipe is two runs averaged: both files must validate, and train on the same data, seed and
    validation fraction, or `cnnlab evaluate RUN1 RUN2` would score one run on the other's training images."""
    from pathlib import Path

    from cnnlab.runs.config import read_yaml

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    mobilenet, lite0 = (TrainConfig.from_dict(read_yaml(recipes / name), where=name).validate()
                        for name in ("ahe_best.yaml", "ahe_best_lite0.yaml"))
    assert mobilenet.model == "mobilenet_v2" and lite0.model == "efficientnet_lite0"
    assert mobilenet.image_sizes() == [96, 128] and mobilenet.size_starts() == [0, 6]
    assert [mobilenet.size_at(e, 0) for e in (0, 5, 6, 11)] == [96, 96, 128, 128]
    assert lite0.image_sizes() == [96, 128] and lite0.size_starts() == [0, 4] and lite0.epochs == 9
    for cfg in (mobilenet, lite0):
        assert cfg.pretrained and not cfg.bf16  # bf16 was slower for both backbones (benchmarks/bf16.py, README)
        assert cfg.freeze == "3"  # stages 1-2 keep their ImageNet weights: a third less time (README)
        assert cfg.val_every == 0  # validated once, after the last epoch: no epoch is picked on validation
        assert (cfg.data, cfg.seed, cfg.val_fraction) == (mobilenet.data, 0, 0.2)
    # training ends within 27 of the 30 minutes on any machine, leaving time to validate and evaluate (README)
    assert (mobilenet.time_budget, lite0.time_budget) == (12, 15)
    # the files are near-copies by design (one file per run): only the model, its sizes and time may differ
    own = {"model", "image_size", "size_epochs", "epochs", "time_budget"}
    shared = [{k: v for k, v in cfg.to_dict().items() if k not in own} for cfg in (mobilenet, lite0)]
    assert shared[0] == shared[1]


def test_ensemble_subsets_benchmark_matches_cnnlab_evaluate(tmp_path, capsys, monkeypatch):
    """benchmarks/ensemble_subsets.py averages cached probabilities per subset: its row for all the runs
    must give what `cnnlab evaluate RUN1 RUN2 --tta flip` writes, and runs of other splits are refused."""
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble_subsets.py"
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    assert main(["train", *TINY, "--epochs", "1", "--output", str(a)]) == 0
    assert main(["train", *TINY, "--epochs", "1", "--image-size", "20", "--output", str(b)]) == 0
    assert main(["train", *DATA, "--image-size", "16", "--epochs", "1", "--seed", "2", "--output", str(other)]) == 0
    assert main(["evaluate", str(a), str(b), "--tta", "flip"]) == 0
    expected = json.loads((a / "evaluation" / "val-tta-flip-ensemble2" / "metrics.json").read_text())["metrics"]
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", [str(script), str(a), str(b), "--names", "A,B", "--tta", "none,flip"])
    runpy.run_path(str(script), run_name="__main__")
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines() if line.startswith("| A")}
    assert list(rows) == ["A", "A + B"]
    flip = rows["A + B"].split(" | ")[2].strip("| ")
    assert flip == f"{expected['accuracy']:.4f} / {expected['f1_macro']:.4f}"
    capsys.readouterr()
    assert main(["evaluate", str(a), str(other)]) == 2  # cnnlab evaluate refuses too, and names its own remedy
    assert "ensemble runs with the same split, or evaluate with --data DIR" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", [str(script), str(a), str(other)])
    with pytest.raises(SystemExit, match="other images") as refused:
        runpy.run_path(str(script), run_name="__main__")
    assert str(refused.value).endswith("give runs trained with the same --seed and --val-fraction")
    assert "--data" not in str(refused.value)  # an option of cnnlab evaluate, not of this script
