"""Exact gradient accumulation: the plan, and parameters after an epoch equal to one big batch."""

from __future__ import annotations

import pytest
import torch

from cnnlab.data.dataset import DataBundle
from cnnlab.data.imageset import ImageSet
from cnnlab.train.accumulate import plan_epoch, steps_per_epoch
from cnnlab.runs.config import TrainConfig
from cnnlab.train.trainer import Trainer


def test_plan_windows_cover_each_sample_once_and_scale_by_window_size():
    order = torch.randperm(50)
    plan = list(plan_epoch(order, batch_size=4, accumulate=3))
    assert torch.equal(torch.cat([mb.indices for mb in plan]), order)
    assert [len(mb.indices) for mb in plan] == [4] * 12 + [2]  # short last micro-batch
    ends = [i for i, mb in enumerate(plan) if mb.ends_window]
    assert ends == [2, 5, 8, 11, 12]  # last window has one micro-batch and is flushed
    assert [mb.loss_scale for mb in plan] == [1 / 12] * 12 + [1 / 2]
    assert steps_per_epoch(50, 4, 3) == 5


def test_plan_under_ddp_deals_each_global_batch_across_ranks():
    order = torch.arange(23)
    ranks = [list(plan_epoch(order, 3, 2, rank=r, world_size=2)) for r in range(2)]
    seen = torch.cat([mb.indices for plan in ranks for mb in plan]).sort().values
    assert torch.equal(seen, order)
    # Global micro-batches of 6: 6, 6, 6, 5 -> windows of 12 and 11 samples. DDP averages over 2 ranks,
    # so each rank scales its loss sum by 2 / window_samples.
    assert [mb.loss_scale for mb in ranks[0]] == [2 / 12, 2 / 12, 2 / 11, 2 / 11]
    assert [mb.ends_window for mb in ranks[1]] == [False, True, False, True]
    assert steps_per_epoch(23, 3, 2, world_size=2) == 2


def test_steps_per_epoch_follows_the_short_ddp_tail_rule():
    """13 samples in global micro-batches of 6 over 2 ranks leave a tail of 1 sample, too few for every
    rank: it joins the last micro-batch, so an epoch is 2 micro-batches (2 steps), not 3."""
    assert steps_per_epoch(13, 3, 1, world_size=2) == 2
    assert [len(mb.indices) for mb in plan_epoch(torch.arange(13), 3, 1, rank=1, world_size=2)] == [3, 3]
    assert steps_per_epoch(14, 3, 1, world_size=2) == 3  # a tail of 2 gives each rank one sample


def _bundle(n: int, seed: int = 0) -> DataBundle:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, 16, 16), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 3
    pool = ImageSet(images, labels, [f"x/{i}" for i in range(n)], ["a", "b", "c"])
    return DataBundle(pool, pool.subset(list(range(6))), None, [], "synthetic")


def _train_one_epoch(tmp_path, name: str, batch_size: int, accumulate: int, epochs: int = 1) -> Trainer:
    cfg = TrainConfig(
        model="tiny_test", epochs=epochs, batch_size=batch_size, accumulate=accumulate, optimizer="sgd",
        momentum=0.9, lr=0.1, schedule="cosine", augment="none", output=str(tmp_path / name), channels_last=False,
    )
    trainer = Trainer(cfg, data=_bundle(50))
    trainer.fit()
    return trainer


def test_accumulated_epoch_equals_big_batch_epoch(tmp_path):
    # 50 samples, micro-batch 4, K = 3: the last micro-batch has 2 samples and the last window one
    # micro-batch, so a "mean per micro-batch / K" rule would give different parameters.
    small = _train_one_epoch(tmp_path, "accumulated", batch_size=4, accumulate=3)
    big = _train_one_epoch(tmp_path, "big", batch_size=12, accumulate=1)
    for (name, a), (_, b) in zip(small.model.state_dict().items(), big.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    assert small.schedule.last_epoch == big.schedule.last_epoch == 5  # schedule counts optimiser steps
    unequal = _train_one_epoch(tmp_path, "plain", batch_size=4, accumulate=1)
    assert not torch.allclose(unequal.model[0].weight, big.model[0].weight, atol=1e-4)  # the test can fail


@pytest.mark.filterwarnings(r"ignore:Seems like `optimizer.step\(\)` has been overridden")
def test_no_window_spans_two_epochs(tmp_path, monkeypatch):
    samples_at_step: list[int] = []
    seen = [0]
    original_forward = Trainer.forward_loss

    def counting_forward(self, x, y):
        seen[0] += len(y)
        return original_forward(self, x, y)

    monkeypatch.setattr(Trainer, "forward_loss", counting_forward)
    trainer = Trainer(TrainConfig(model="tiny_test", epochs=2, batch_size=4, accumulate=3, augment="none",
                                  output=str(tmp_path / "r"), channels_last=False), data=_bundle(50))
    step = trainer.optimizer.step

    def recording_step(*a, **k):
        samples_at_step.append(seen[0])
        return step(*a, **k)

    trainer.optimizer.step = recording_step  # type: ignore[method-assign]
    trainer.fit()
    assert samples_at_step == [12, 24, 36, 48, 50, 62, 74, 86, 98, 100]
    assert all(p.grad is None for p in trainer.model.parameters())  # nothing left over after the flush
