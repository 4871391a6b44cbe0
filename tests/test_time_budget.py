"""--time-budget: the learning-rate schedule keeps to the clock, and training ends with it on time."""

from __future__ import annotations

import logging

import pytest
import torch

from cnnlab.cli import main
from cnnlab.runs.config import TrainConfig
from cnnlab.train.budget import TimeBudget
from cnnlab.train.callbacks import Callback
from cnnlab.train.trainer import Trainer
from histories import history_without_timing

STEP_S = 10.0  # seconds of the fake clock per optimiser step
FLAGS = ["--model", "tiny_test", "--shapes-per-class", "6", "--image-size", "16", "--batch-size", "8", "--seed", "2",
         "--ema", "0.5", "--schedule", "onecycle", "--epochs", "3", "--device", "cpu"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tick(Callback):
    """Each optimiser step takes STEP_S seconds (the clock moves after the step's schedule update)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def on_step_end(self, trainer, info) -> None:
        self.clock.now += STEP_S


def planned_lrs(lr: float, total: int) -> list[float]:
    """The rate of each of ``total`` one-cycle steps, as torch plans them with no budget."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    return lrs


def rates_taken(budget: TimeBudget, clock: FakeClock, step_s: float) -> list[float]:
    """The rate of each step a 10-step one-cycle schedule (peak 1.0) takes under ``budget``, with each
    step taking ``step_s`` seconds of ``clock``."""
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    used = []
    while not budget.over:
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
        clock.now += step_s
        budget.catch_up(schedule, budget.spent())
    return used


def test_a_slow_clock_skips_steps_so_the_schedule_ends_on_time():
    clock = FakeClock()
    budget = TimeBudget(1.0, total_steps=10, started=0.0, clock=clock)  # 60 s for 10 steps of 10 s each
    used = rates_taken(budget, clock, STEP_S)
    # by hand: after step k the clock says 10k s = k/6 of the budget, so the plan is at floor(10k/6):
    # 1, 3 (one skipped), 5 (one), 6, 8 (one), 10 (one): six steps taken, at plan positions 0 1 3 5 6 8
    plan = planned_lrs(1.0, 10)
    assert used == [plan[i] for i in (0, 1, 3, 5, 6, 8)]
    assert (budget.position, budget.skipped, clock.now) == (10, 4, 60.0)
    assert "4 of the schedule's 10 optimiser steps were skipped" in budget.describe()


@pytest.mark.parametrize("step_s, positions", [(4.0, range(10)), (8.0, (0, 2, 4, 6, 8))])
def test_the_start_up_is_not_counted_as_steps_running_late(step_s, positions):
    """1 min for 10 steps, 20 s of it spent loading before the first: 40 s are left for the steps.
    Steps of 4 s fit (counting the start-up as steps would skip 4 after the first); after the k-th
    step of 8 s the plan is at floor(8k / 40 * 10) = 2k: every other step is skipped."""
    clock = FakeClock()
    budget = TimeBudget(1.0, total_steps=10, started=0.0, clock=clock)
    clock.now = 20.0
    budget.start_training(budget.spent())
    used = rates_taken(budget, clock, step_s)
    plan = planned_lrs(1.0, 10)
    assert used == [plan[i] for i in positions]
    assert clock.now == 20.0 + step_s * len(positions) <= 60.0


def test_a_budget_the_machine_keeps_changes_nothing(tmp_path):
    plain, budgeted = tmp_path / "plain", tmp_path / "budgeted"
    assert main(["train", *FLAGS, "--output", str(plain)]) == 0
    assert main(["train", *FLAGS, "--time-budget", "600", "--output", str(budgeted)]) == 0
    assert history_without_timing(plain) == history_without_timing(budgeted)
    a = torch.load(plain / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    b = torch.load(budgeted / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert all(torch.equal(a[part][k], b[part][k]) for part in ("model", "ema") for k in a[part])
    assert b["time_budget"]["skipped"] == 0 and b["time_budget"]["position"] == b["global_step"]
    assert 0 < b["time_budget"]["spent_s"] < 600


def test_a_short_budget_ends_early_with_the_schedule_and_resizes_on_its_clock(tmp_path, caplog):
    """4 epochs of S steps planned, time for about half: after step k (k >= 2) the plan is at
    2(k - 1): the schedule reaches its last epoch (the 24 px one) during real epoch 2, so real epoch 3
    trains at 24 px (counting epochs, it would be 16), and it ends after 2S + 1 steps, one step into
    epoch 3, with the rate annealed as planned."""
    cfg = TrainConfig(model="tiny_test", shapes_per_class=6, image_size="16:24", size_epochs="3", epochs=4,
                      batch_size=8, seed=3, schedule="onecycle", lr=0.01, ema=0.5, val_every=0, device="cpu",
                      output=str(tmp_path / "run"))
    clock = FakeClock()
    trainer = Trainer.from_config(cfg, callbacks=[Tick(clock)])
    steps = trainer.steps_per_epoch
    assert steps >= 3
    trainer.cfg.time_budget = STEP_S * 2 * steps / 60  # minutes for half the planned steps
    trainer.budget = TimeBudget(trainer.cfg.time_budget, 4 * steps, started=0.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="cnnlab"):
        run = trainer.fit()

    history = [row for row in history_without_timing(run)]
    assert [row["image_size"] for row in history] == [16, 16, 24]
    ckpt = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 2 * steps + 1 and ckpt["epoch"] == 3
    assert ckpt["time_budget"] == {"spent_s": STEP_S * (2 * steps + 1), "setup_s": 0.0, "position": 4 * steps,
                                   "skipped": 2 * steps - 1}
    # the last step trained at the plan's position 4S - 2, one before its last
    assert history[-1]["lr"] == pytest.approx(planned_lrs(0.01, 4 * steps)[4 * steps - 2], rel=1e-6)
    assert history[-1]["val_accuracy"] == history[-1]["val_accuracy"]  # the last epoch was validated (not NaN)
    assert f"{2 * steps - 1} of the schedule's {4 * steps} optimiser steps were skipped" in caplog.text

    # a resume trains nothing more and says why; its clock goes on from the checkpoint's
    resumed = Trainer.resume(run)
    assert resumed.budget.spent_before == STEP_S * (2 * steps + 1) and resumed.budget.over
    with caplog.at_level(logging.WARNING, logger="cnnlab"):
        resumed.fit()
    assert "already ended at its --time-budget" in caplog.text
    assert history_without_timing(run) == history
    longer = Trainer.resume(run, epochs=6)  # more epochs, but no time left to train them in
    assert longer.budget.position < longer.budget.total_steps and longer.budget.over
    longer.fit()
    assert history_without_timing(run) == history


@pytest.mark.parametrize("flags, message", [
    (["--time-budget", "-1"], "--time-budget must be minutes of wall time, a number >= 0"),
    (["--time-budget", "5", "--freeze-epochs", "1"], "--time-budget keeps one learning-rate schedule"),
])
def test_bad_budgets_are_one_line_errors(flags, message, capsys):
    assert main(["train", *FLAGS, *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_long_start_up_that_leaves_time_for_every_step_skips_none(tmp_path):
    """Loading takes as long as all the steps and the budget holds both (with half a step to spare): the
    run equals one without a budget, where counting the loading as steps would skip about half."""
    def run(name: str, budgeted: bool):
        cfg = TrainConfig(model="tiny_test", shapes_per_class=6, image_size="16", epochs=2, batch_size=8, seed=3,
                          schedule="onecycle", lr=0.01, val_every=0, device="cpu", output=str(tmp_path / name))
        clock = FakeClock()
        trainer = Trainer.from_config(cfg, callbacks=[Tick(clock)])
        total = 2 * trainer.steps_per_epoch
        start_up = STEP_S * total
        if budgeted:
            trainer.cfg.time_budget = (start_up + STEP_S * (total + 0.5)) / 60
            trainer.budget = TimeBudget(trainer.cfg.time_budget, total, started=0.0, clock=clock)
        clock.now = start_up
        return trainer.fit(), total, start_up

    plain, _, _ = run("plain", budgeted=False)
    budgeted, total, start_up = run("budgeted", budgeted=True)
    assert history_without_timing(plain) == history_without_timing(budgeted)
    ckpt = torch.load(budgeted / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == total
    assert ckpt["time_budget"] == {"spent_s": start_up + STEP_S * total, "setup_s": start_up, "position": total,
                                   "skipped": 0}
    resumed = Trainer.resume(budgeted, epochs=3)  # keeps the first start-up; its own loading counts as late steps
    resumed.budget.start_training(resumed.budget.spent())
    assert resumed.budget.setup == start_up and resumed.budget.spent_before == start_up + STEP_S * total
