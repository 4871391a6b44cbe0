"""Frozen-feature cache: training the head on cached backbone features gives the same model as
training through the frozen network, and the cache is only used when that holds."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data.augment import augment_config
from cnnlab.models import create_model
from cnnlab.train import feature_cache
from cnnlab.train.trainer import Trainer

from test_transfer_freeze import bundle, config


def _train(tmp_path, name: str, monkeypatch, **kw) -> tuple[Trainer, int]:
    calls = []
    original = feature_cache.backbone_features

    def counting(*args, **kwargs):
        calls.append(len(args[1]))
        return original(*args, **kwargs)

    monkeypatch.setattr(feature_cache, "backbone_features", counting)
    trainer = Trainer(config(tmp_path, name, **kw), data=bundle(n_train=24))
    trainer.fit()
    monkeypatch.setattr(feature_cache, "backbone_features", original)
    return trainer, len(calls)


def test_cached_features_train_the_head_exactly_like_the_frozen_network(tmp_path, monkeypatch):
    kw = dict(model="mobilenet_v2", freeze="head", epochs=3, optimizer="adamw", lr=1e-2, batch_size=8,
              model_options={"dropout": 0.3, "hidden": 16})  # dropout: the head draws the same masks both ways
    cached, n_cached = _train(tmp_path, "cached", monkeypatch, **kw)
    direct, n_direct = _train(tmp_path, "direct", monkeypatch, feature_cache=False, **kw)
    assert n_cached == 2 and n_direct == 0  # train and validation features, computed once for 3 epochs
    a, b = cached.model.state_dict(), direct.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("body."))  # the backbone never changed
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    for ha, hb in zip(cached.history, direct.history):
        assert ha["val_accuracy"] == hb["val_accuracy"] and ha["train_accuracy"] == hb["train_accuracy"]
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], rel=1e-4)
        assert ha["train_loss"] == pytest.approx(hb["train_loss"], rel=1e-4)
    assert cached.history[-1]["train_loss"] < cached.history[0]["train_loss"]  # the head learned something


def test_cache_only_when_the_whole_backbone_is_frozen_and_augmentation_off():
    off = augment_config("none")
    model = create_model("mobilenet_v3_small", 4)
    model.set_trainable_stages(0)
    assert feature_cache.usable(model, off, enabled=True, distributed=False)
    assert not feature_cache.usable(model, augment_config("light"), enabled=True, distributed=False)
    assert not feature_cache.usable(model, off, enabled=False, distributed=False)
    assert not feature_cache.usable(model, off, enabled=True, distributed=True)
    model.set_trainable_stages(0, train_bn=True)  # BatchNorm in the body still trains
    assert not feature_cache.usable(model, off, enabled=True, distributed=False)
    model.set_trainable_stages(1)
    assert not feature_cache.usable(model, off, enabled=True, distributed=False)
    inception = create_model("inception_v3", 4)  # its auxiliary classifier trains inside the body
    inception.set_trainable_stages(0)
    assert not feature_cache.usable(inception, off, enabled=True, distributed=False)
    assert not feature_cache.usable(create_model("ahe_cnn", 4), off, enabled=True, distributed=False)
