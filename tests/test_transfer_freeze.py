"""Freezing: frozen stages and their BatchNorm statistics never change, parameter groups and
discriminative LRs, the head-first fine-tune schedule, and resume after unfreezing."""

from __future__ import annotations

import math

import pytest
import torch

from ctrl_c import ctrl_c_cli_run
from histories import history_without_timing
from cnnlab.cli import main
from cnnlab.data.dataset import DataBundle
from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError
from cnnlab.runs.config import TrainConfig
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer

SIZE = 32


def bundle(n_train: int = 16, n_val: int = 8, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    labels = torch.arange(n) % 4
    # images whose colour depends on the class, so the heads have something to learn
    base = torch.randint(0, 256, (n, 3, SIZE, SIZE), generator=g, dtype=torch.int64) // 4
    base[:, 0] += labels.view(-1, 1, 1) * 48
    pool = ImageSet(base.clamp(0, 255).to(torch.uint8), labels, [f"x/{i}.png" for i in range(n)], list("abcd"))
    return DataBundle(pool.subset(list(range(n_train))), pool.subset(list(range(n_train, n))), None, [], "synthetic")


def config(tmp_path, name: str = "run", **kw) -> TrainConfig:
    base = dict(model="mobilenet_v3_small", image_size=SIZE, epochs=1, batch_size=8, optimizer="sgd", lr=0.05,
                augment="none", output=str(tmp_path / name), seed=4, channels_last=False)
    base.update(kw)
    return TrainConfig(**base)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def stage_state(model, index: int) -> dict[str, torch.Tensor]:
    out = {}
    for path in model.stages[index][1]:
        out.update({f"{path}.{k}": v.detach().clone() for k, v in model.body.get_submodule(path).state_dict().items()})
    return out


def test_frozen_stages_keep_weights_and_batchnorm_statistics(tmp_path):
    trainer = Trainer(config(tmp_path, freeze="2", epochs=2), data=bundle())
    model = trainer.model
    assert [s for s, _ in model.stages] == ["stage1", "stage2", "stage3", "stage4", "stage5", "pre_logits"]
    before = [stage_state(model, i) for i in range(6)]
    head_before = snapshot(model.head)
    trainer.train_epoch()
    trainer.train_epoch()
    after = [stage_state(model, i) for i in range(6)]
    for i in range(4):  # stage1..stage4 frozen: every tensor identical, running statistics included
        assert all(torch.equal(before[i][k], after[i][k]) for k in before[i]), f"stage{i + 1} changed"
        assert not any(p.requires_grad for m in model.stage_modules(i) for p in m.parameters())
        assert all(not m.training for m in model.stage_modules(i))
    changed = {k for k in before[4] if not torch.equal(before[4][k], after[4][k])}  # stage5 trains
    assert any(k.endswith("running_mean") for k in changed) and any(k.endswith("weight") for k in changed)
    assert all(not torch.equal(before[5][k], after[5][k]) for k in before[5])  # pre_logits trains
    assert not torch.equal(head_before["1.weight"], model.head[1].weight)


def test_train_bn_lets_the_frozen_batchnorm_layers_train(tmp_path):
    trainer = Trainer(config(tmp_path, freeze="head", train_bn=True), data=bundle())
    model = trainer.model
    assert trainer.cache is None
    before = stage_state(model, 0)
    trainer.train_epoch()
    after = stage_state(model, 0)
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "features.0.1.running_mean" in changed and "features.0.1.weight" in changed  # BatchNorm trains
    assert "features.0.0.weight" not in changed  # the convolution stays frozen


def test_parameter_groups_run_head_first_with_discriminative_lrs(tmp_path):
    trainer = Trainer(config(tmp_path, lr=1e-3, lr_ratio=0.1, schedule="none", optimizer="adamw"), data=bundle())
    groups = trainer.optimizer.param_groups
    assert [g["name"] for g in groups] == ["head", "pre_logits", "stage5", "stage4", "stage3", "stage2", "stage1"]
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9])
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(trainer.model.parameters()))
    for g, (name, params) in zip(groups, trainer.model.groups()):
        assert g["name"] == name and [id(p) for p in g["params"]] == [id(p) for p in params]


class EpochStates(Callback):
    """What each epoch starts with: trainable groups, learning rates, whether cached features are used."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.seen.append({
            "trainable": [n for n, ps in trainer.model.groups() if ps[0].requires_grad],
            "lr": trainer.optimizer.param_groups[0]["lr"], "cache": trainer.cache is not None,
            "flags": {n: p.requires_grad for n, p in trainer.model.named_parameters()},
            "groups": [(g["name"], g["lr"], g["base_lr"]) for g in trainer.optimizer.param_groups]})


class CtrlCAtEpochStart(Callback):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_start(self, trainer: Trainer) -> None:
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt  # the user presses Ctrl-C


def test_head_first_then_gradual_unfreezing_with_a_fresh_schedule(tmp_path):
    states = EpochStates()
    cfg = config(tmp_path, epochs=4, freeze="2", freeze_epochs=1, unfreeze="gradual", lr=1e-2, schedule="cosine")
    trainer = Trainer.from_config(cfg, data=bundle(), callbacks=[states])
    trainer.fit()
    seen = states.seen
    assert [s["trainable"] for s in seen] == [["head"], ["head", "pre_logits"], ["head", "pre_logits", "stage5"],
                                              ["head", "pre_logits", "stage5"]]
    assert [s["cache"] for s in seen] == [True, False, False, False]  # features cached while all is frozen
    assert seen[0]["lr"] == seen[1]["lr"] == pytest.approx(1e-2)  # the fine-tuning phase starts afresh
    steps = trainer.steps_per_epoch  # history's lr: the rate the head phase's last step used, on its cosine
    assert trainer.history[0]["lr"] == pytest.approx(1e-2 * (1 + math.cos(math.pi * (steps - 1) / steps)) / 2)
    assert seen[2]["lr"] < 1e-2


def test_unfreeze_all_at_once(tmp_path):
    states = EpochStates()
    Trainer.from_config(config(tmp_path, epochs=2, freeze_epochs=1), data=bundle(), callbacks=[states]).fit()
    assert states.seen[0]["trainable"] == ["head"]
    assert states.seen[1]["trainable"] == ["head", "pre_logits", "stage5", "stage4", "stage3", "stage2", "stage1"]


def test_resume_at_the_phase_change_keeps_flags_groups_and_results(tmp_path):
    stop_at = 1  # the checkpoint is the head phase's last; the next epoch unfreezes (the CLI test below stops later)
    kw = dict(epochs=3, freeze="2", freeze_epochs=1, unfreeze="gradual", lr_ratio=0.5, augment="light",
              optimizer="adamw", lr=3e-3)
    uninterrupted = EpochStates()
    full = Trainer.from_config(config(tmp_path, "full", **kw), data=bundle(), callbacks=[uninterrupted])
    full.fit()
    with pytest.raises(KeyboardInterrupt):
        Trainer.from_config(config(tmp_path, "cut", **kw), data=bundle(), callbacks=[CtrlCAtEpochStart(stop_at)]).fit()

    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["finetune"]["trainable"] == ["head"] and ckpt["finetune"]["phase"] == 0
    after_resume = EpochStates()
    resumed = Trainer.resume(tmp_path / "cut", data=bundle(), callbacks=[after_resume])
    resumed.fit()
    assert len(after_resume.seen) == 2  # the same state as the uninterrupted run had at each epoch's start
    for key in ("flags", "groups", "trainable", "cache"):
        assert [s[key] for s in after_resume.seen] == [s[key] for s in uninterrupted.seen[stop_at:]], key
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [g["lr"] for g in full.optimizer.param_groups] == [g["lr"] for g in resumed.optimizer.param_groups]
    assert {n: p.requires_grad for n, p in full.model.named_parameters()} == \
           {n: p.requires_grad for n, p in resumed.model.named_parameters()}


def test_resume_through_the_cli_matches_the_uninterrupted_history(tmp_path, monkeypatch):
    args = ["train", "--model", "mobilenet_v3_small", "--image-size", "32", "--shapes-per-class", "3",
            "--batch-size", "10", "--epochs", "3", "--freeze-epochs", "1", "--unfreeze", "gradual", "--freeze", "3",
            "--lr-ratio", "0.3", "--seed", "5"]
    assert main([*args, "--output", str(tmp_path / "full")]) == 0
    assert ctrl_c_cli_run(monkeypatch, [*args, "--output", str(tmp_path / "cut")], epoch=2) == 130
    assert main(["train", "--resume", str(tmp_path / "cut")]) == 0
    assert history_without_timing(tmp_path / "cut") == history_without_timing(tmp_path / "full")
    a = torch.load(tmp_path / "full" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert a["finetune"] == b["finetune"] == {"phase": 1, "trainable_stages": 2, "train_bn": False,
                                              "trainable": ["head", "pre_logits", "stage5"]}
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]


@pytest.mark.parametrize("kw, message", [
    (dict(freeze="9"), "--freeze 9: mobilenet_v3_small has 6 stages"),
    (dict(freeze="some"), "--freeze must be none, head or a number"),
    (dict(freeze="head", freeze_epochs=2), "--freeze-epochs trains the head first"),
    (dict(model="ahe_cnn", freeze="head"), "--freeze needs a backbone with stages, and ahe_cnn has none"),
    (dict(model="ahe_cnn", lr_ratio=0.1), "--lr-ratio needs a backbone"),
    (dict(pretrained=True, weights="x.pt"), "--pretrained and --weights both"),
    (dict(unfreeze="slowly"), "--unfreeze must be one of all, gradual"),
])
def test_bad_transfer_settings_are_user_errors(tmp_path, kw, message):
    with pytest.raises(UserError, match=message):
        Trainer(config(tmp_path, **kw), data=bundle())


def test_transfer_flags_reach_the_config():
    import argparse

    from cnnlab.cli.train import add_train_arguments, config_from_args

    p = argparse.ArgumentParser()
    add_train_arguments(p)
    cfg = config_from_args(p.parse_args(["--model", "resnet18", "--pretrained", "IMAGENET1K_V1", "--freeze", "2",
                                         "--train-bn", "--lr-ratio", "0.1", "--freeze-epochs", "3", "--unfreeze",
                                         "gradual", "--no-feature-cache", "--head-hidden", "256", "--dropout", "0.3"]))
    assert (cfg.pretrained, cfg.freeze, cfg.train_bn, cfg.lr_ratio, cfg.freeze_epochs, cfg.unfreeze, cfg.feature_cache) \
        == ("IMAGENET1K_V1", "2", True, 0.1, 3, "gradual", False)
    assert cfg.model_options == {"hidden": 256, "dropout": 0.3}
    cfg = config_from_args(p.parse_args(["--pretrained", "--freeze-bn"]))
    assert cfg.pretrained is True and cfg.train_bn is False
