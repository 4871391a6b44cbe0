"""The training loop: epochs of exact-accumulation steps, validation, history, checkpoints, resume.

Read top to bottom: ``Trainer.from_config`` / ``Trainer.resume`` build data, model and optimiser from a
``TrainConfig`` (or from a run's last checkpoint) in small named steps; ``fit`` runs epochs; ``train_epoch``
is the inner loop, whose accumulation rules live in ``accumulate.plan_epoch``. Everything written or shown
along the way (checkpoints, history, curves, progress) is a callback (``callbacks.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnlab import atomic
from cnnlab.data.augment import augment_config, batch_seeds
from cnnlab.data.batch import prepare
from cnnlab.data.dataset import DataBundle, load_data
from cnnlab.data.normalize import Normalization
from cnnlab.data.prefetch import prefetch
from cnnlab.device import pick_device
from cnnlab.errors import UserError
from cnnlab.metrics import METRIC_NAMES, EpochMetrics
from cnnlab.models import create_model, model_info
from cnnlab.models.outputs import aux_logits_of, logits_of
from cnnlab.train import feature_cache
from cnnlab.runs import run as runs
from cnnlab.train.callbacks import BatchInfo, Callback, Checkpoints, Curves, HistoryFiles, Progress, StepInfo
from cnnlab.train.accumulate import MicroBatch, plan_epoch, steps_per_epoch
from cnnlab.runs.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from cnnlab.runs.config import TrainConfig, to_yaml
from cnnlab.train.ema import WeightEMA
from cnnlab.train.mixing import Mixing
from cnnlab.train.budget import TimeBudget
from cnnlab.train.distributed import DistInfo, barrier, broadcast_flag, broadcast_value, gather_to_main, init_distributed
from cnnlab.train.freeze import FineTune
from cnnlab.train.grad_norms import GradNorms
from cnnlab.train.guard import NonFiniteGuard
from cnnlab.train.interrupt import StopRequests, TrainingInterrupted
from cnnlab.train.mid_epoch import EpochProgress
from cnnlab.train.resume import check_same_run, resumed_schedule
from cnnlab.train.optim import build_optimizer, build_schedule


logger = logging.getLogger("cnnlab")


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def compiled(net: nn.Module, device: torch.device) -> nn.Module:
    """``net`` under ``torch.compile`` for training steps (same parameters, so checkpoints, EMA and
    validation use ``net`` as before). Static shapes: each image size compiles once, and the caller
    runs other batch sizes eagerly rather than recompiling for them. On CPU, inductor builds C++:
    without a compiler the run stops here, not at its first step with a long trace."""
    if device.type == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if c):
        raise UserError("--compile on CPU needs a C++ compiler (g++ or clang++) on PATH: install one "
                        "(e.g. apt-get install g++), set CXX, or train without --compile")
    return torch.compile(net, dynamic=False)


class Trainer:
    """Build with ``from_config`` (a new run) or ``resume`` (continue one); ``fit`` trains.

    ``__init__`` is the same named steps either way -- device, data, model (and initial weights), fine-tuning
    state, optimiser and schedule, counters, then a new run directory or the checkpoint restored -- so a
    subclass or a test can reuse or replace one step without the others.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        data: DataBundle | None = None,
        callbacks: Iterable[Callback] = (),
        checkpoint: dict[str, Any] | None = None,
        run_dir: str | Path | None = None,
    ) -> None:
        """Prefer ``Trainer.from_config`` / ``Trainer.resume``; ``checkpoint`` and ``run_dir`` go together."""
        self.built_at = time.monotonic()  # a --time-budget counts from here: loading the data is part of the run
        self.cfg = cfg.validate()
        if checkpoint is None:
            runs.check_output_free(self.cfg)  # before any work, not after loading the data
        self._init_device()
        self._init_data(data)
        self._init_model(load_initial_weights=checkpoint is None)
        self._init_optimisation()
        self._init_counters()
        self.run_dir: Path | None = None  # a new run's directory appears when training starts (fit)
        if checkpoint is not None:
            self.run_dir = Path(run_dir)  # type: ignore[arg-type]
            self._restore(checkpoint)
        self._set_image_size()
        self.callbacks: list[Callback] = (self.default_callbacks() if self.dist.is_main else []) + list(callbacks)
        if cfg.accumulate > 1 and _has_batchnorm(self.model):
            logger.warning(f"warning: BatchNorm statistics see micro-batches of {self.batch_size} images, not the "
                           f"{self.batch_size * cfg.accumulate} of one accumulated step")

    @classmethod
    def from_config(cls, cfg: TrainConfig, data: DataBundle | None = None, callbacks: Iterable[Callback] = ()) -> Trainer:
        """A new run: ``data`` defaults to what ``cfg`` names (a folder, or the built-in shapes);
        ``callbacks`` run after the default ones (checkpoints, history, curves, progress)."""
        return cls(cfg, data=data, callbacks=callbacks)

    @classmethod
    def resume(cls, run_dir: str | Path, epochs: int | None = None, data: DataBundle | None = None,
               callbacks: Iterable[Callback] = ()) -> Trainer:
        """Continue ``run_dir`` from its last checkpoint: same config (``epochs`` may be raised), same
        data split, and model, optimiser, schedule, RNG and epoch as they were."""
        ckpt = load_checkpoint(run_dir, "last")
        cfg = TrainConfig.from_dict(ckpt["config"], where=f"{run_dir} checkpoint")
        if epochs is not None:
            cfg.epochs = epochs
        return cls(cfg, data=data, callbacks=callbacks, checkpoint=ckpt, run_dir=run_dir)

    def default_callbacks(self) -> list[Callback]:
        """What every run writes and shows (main process only), in this order: the checkpoint first (it
        holds the history too), history files, curves, gradient norms when asked for, then progress."""
        grad_norms = [GradNorms(self.cfg.log_grad_norms)] if self.cfg.log_grad_norms else []
        return [Checkpoints(), HistoryFiles(), Curves(), *grad_norms, Progress()]

    # ----------------------------------------------------------------- construction steps
    def _init_device(self) -> None:
        """The device, the process group under torchrun, and the global seed and determinism flags."""
        self.device = pick_device(self.cfg.device)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(self.cfg.seed)
        if self.cfg.deterministic:
            # cuBLAS is deterministic only with a fixed workspace (PyTorch's reproducibility notes);
            # without it use_deterministic_algorithms makes the first CUDA matrix product raise
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False

    def _init_data(self, data: DataBundle | None) -> None:
        """The split images (given, or loaded as ``cfg`` says), their normalisation, augmentation and batch size."""
        cfg = self.cfg
        info = model_info(cfg.model)
        self.default_size = info.default_image_size
        sizes = cfg.image_sizes() or [info.default_image_size]
        if min(sizes) < info.min_image_size:
            raise UserError(f"--image-size {min(sizes)} is too small for {cfg.model}: use at least {info.min_image_size}")
        # Loaded at the largest size first (normalisation is measured there); progressive resizing loads
        # the other sizes when their epochs start (``_images_at``).
        self.given_data = data is not None
        self.full_data = data or load_data(cfg.data, max(sizes), cfg.val_fraction, cfg.seed, cfg.cache_dir,
                                           cfg.shapes_per_class, cfg.max_pixels)
        self.data, self.image_size = self.full_data, self.full_data.train.images.shape[-1]
        self.classes = self.data.classes
        if len(self.data.train) == 0:
            raise UserError("the training split is empty: lower --val-fraction or add images")
        self.norm = (Normalization(info.mean, info.std) if info.mean and info.std
                     else Normalization.measure(self.data.train.images))
        self.mixing = Mixing(cfg.mixup, cfg.cutmix, cfg.mix_prob)
        self.augment = augment_config(cfg.augment, cfg.augment_options)
        self.batch_size = len(self.data.train) if cfg.batch_size == "all" else int(cfg.batch_size)

    def _init_model(self, load_initial_weights: bool) -> None:
        """The registry model (with --pretrained/--weights on a new run), on its device, its freeze state,
        and ``net``: the model as called in training (wrapped in DDP under torchrun)."""
        cfg = self.cfg
        self.model = create_model(cfg.model, len(self.classes), **cfg.model_options)
        if load_initial_weights and (cfg.pretrained or cfg.weights) and self.dist.is_main:  # DDP copies rank 0's
            from cnnlab.models.weights import load_initial_weights as load

            logger.info(load(self.model, cfg.model, cfg.pretrained, cfg.weights))
        self.model.to(self.device)
        self.finetune = FineTune(self.model, cfg, self.dist.enabled)  # freeze state, parameter groups, phases
        self.cache: feature_cache.FeatureCache | None = None
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = WeightEMA(self.model, cfg.ema) if cfg.ema else None
        self.serve_ema = False  # whether the EMA weights scored better on --monitor in the last validation
        self.net: nn.Module = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.compiled_net = compiled(self.net, self.device) if cfg.compile else None

    def _init_optimisation(self) -> None:
        """Optimiser over the fine-tuning parameter groups, LR schedule (counting optimiser steps), loss,
        and the generators of sample order and augmentation."""
        cfg = self.cfg
        self.steps_per_epoch = steps_per_epoch(len(self.data.train), self.batch_size, cfg.accumulate, self.dist.world_size)
        self.optimizer = build_optimizer(self.finetune.param_groups(), cfg)
        self.schedule = build_schedule(self.optimizer, cfg, self.steps_per_epoch, self.finetune.phase_epochs())
        self.criterion = nn.CrossEntropyLoss(reduction="sum", label_smoothing=cfg.label_smoothing)
        self.order_gen = torch.Generator().manual_seed(cfg.seed)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.budget = (TimeBudget(cfg.time_budget, self.steps_per_epoch * cfg.epochs, started=self.built_at)
                       if cfg.time_budget else None)

    def _init_counters(self) -> None:
        self.epoch = 0  # epochs completed
        self.global_step = 0  # optimiser steps taken
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] | None = None
        self.stale_epochs = 0
        self.progress: EpochProgress | None = None  # set while an epoch runs (what a mid-epoch checkpoint holds)
        self.last_step_lr: float | None = None  # the rate the latest optimiser step used (history's lr column)
        self.guard = NonFiniteGuard(self.cfg.skip_nonfinite)
        self.stop = StopRequests(enabled=False)

    def _init_run_dir(self) -> None:
        """A new run directory with config, classes and split lists (main process only)."""
        self.made_run_dir = not (self.cfg.output and Path(self.cfg.output).exists())
        self.run_dir = runs.new_run_dir(self.cfg) if self.dist.is_main else Path(".")
        if self.dist.is_main:
            self._write_run_files()

    def effective_batch(self) -> str:
        """The samples whose mean gradient one optimiser step applies, and where the number comes from."""
        world = self.dist.world_size
        return (f"effective batch {self.batch_size * self.cfg.accumulate * world} = micro-batch {self.batch_size} x "
                f"accumulate {self.cfg.accumulate} x {world} process{'es' if world > 1 else ''}")

    def _write_run_files(self) -> None:
        d = self.run_dir
        atomic.write_text(d / "config.yaml", f"# {self.effective_batch()}\n" + to_yaml(self.cfg))
        atomic.write_json(d / "classes.json", self.classes)
        runs.write_split(d, "train", self.data.train)
        runs.write_split(d, "val", self.data.val)
        runs.write_skipped(d, self.data.skipped)
        if self.data.skipped:
            logger.warning(f"skipped {len(self.data.skipped)} unreadable file(s), listed in {d / 'skipped.txt'}")

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state(), "order": self.order_gen.get_state(), "augment": self.aug_gen.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": 1,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            **({"ema": self.ema.state_dict(), "ema_updates": self.ema.updates,
                "serve": "ema" if self.serve_ema else "model"} if self.ema else {}),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": rng,
            "history": self.history,
            "best": self.best,
            "stale_epochs": self.stale_epochs,
            "config": self.cfg.to_dict(),
            "classes": list(self.classes),
            "normalization": self.norm.to_dict(),
            "image_size": self.image_size,
            "finetune": self.finetune.state(),
            "last_step_lr": self.last_step_lr,
            **({"time_budget": self.budget.state()} if self.budget else {}),
            "in_epoch": None,  # at an epoch's end; see _between_steps for checkpoints inside one
        }

    def _restore(self, ckpt: dict[str, Any]) -> None:
        split = self.run_dir / "split" / "train.txt"
        saved_names = runs.read_split(self.run_dir, "train") if split.is_file() else None
        check_same_run(ckpt, self.run_dir, self.classes, self.data.train.names, saved_names, self.model)
        self.model.load_state_dict(ckpt["model"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["ema"])
            self.ema.updates = int(ckpt["ema_updates"])
            self.serve_ema = ckpt["serve"] == "ema"
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.finetune.restore(ckpt.get("finetune")):  # saved in a later phase: that phase's schedule
            self.schedule = build_schedule(self.optimizer, self.cfg, self.steps_per_epoch, self.finetune.phase_epochs())
        self.schedule = resumed_schedule(self.schedule, ckpt["schedule"], self.optimizer, self.cfg,
                                         self.steps_per_epoch, self.finetune.phase_epochs())
        self.last_step_lr = ckpt.get("last_step_lr")
        if ckpt.get("in_epoch"):  # one position per process
            if len(ckpt["in_epoch"]) != self.dist.world_size:
                raise UserError(f"{self.run_dir} was stopped inside an epoch by {len(ckpt['in_epoch'])} process(es): "
                                "resume it with as many")
            self.progress = EpochProgress.from_state(ckpt["in_epoch"][self.dist.rank], self.device)
        self.epoch, self.history = int(ckpt["epoch"]), list(ckpt["history"])
        self.global_step = int(ckpt.get("global_step", self.epoch * self.steps_per_epoch))  # older checkpoints
        self.best, self.stale_epochs = ckpt["best"], int(ckpt["stale_epochs"])
        if self.budget is not None:
            self.budget.restore(ckpt["time_budget"])
        self.norm = Normalization.from_dict(ckpt["normalization"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.order_gen.set_state(ckpt["rng"]["order"])
        self.aug_gen.set_state(ckpt["rng"]["augment"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])

    # ----------------------------------------------------------------- loop
    def fit(self) -> Path:
        """Train until ``cfg.epochs`` (or early stop); returns the run directory. A new run's directory is
        made here, and removed again if the run fails before its first checkpoint (nothing to resume or
        use). SIGINT/SIGTERM end the current step, write a checkpoint and raise ``TrainingInterrupted``."""
        new = self.run_dir is None
        if new:
            self._init_run_dir()
        if self.dist.is_main:
            logger.info(self.effective_batch())
        try:
            with StopRequests(enabled=not self.dist.enabled) as self.stop:
                self._fit_epochs()
        except BaseException:
            if new and self.dist.is_main and not checkpoint_path(self.run_dir, "last").is_file():
                runs.remove_run_dir(self.run_dir, self.made_run_dir)
            raise
        return self.run_dir  # type: ignore[return-value]

    def _fit_epochs(self) -> None:
        if self.epoch >= self.cfg.epochs and self.dist.is_main:
            logger.warning(f"{self.run_dir} already finished {self.epoch} epochs: pass --epochs N (more) to continue")
        if self.budget_over() and self.epoch < self.cfg.epochs and self.dist.is_main:
            logger.warning(f"{self.run_dir} already ended at its --time-budget of {self.cfg.time_budget:g} min: "
                           "start a new run to train longer")
        if self.budget is not None:
            self.budget.start_training(broadcast_value(self.dist, self.budget.spent(), self.device))
        self._emit("on_fit_start")
        while self.epoch < self.cfg.epochs and not self.budget_over():
            self._begin_epoch()
            self._emit("on_epoch_start")
            t0 = time.perf_counter()
            train = self.train_epoch()
            train_time = time.perf_counter() - t0
            validated = self.validates_after(self.epoch + 1)
            skipped = dict.fromkeys(METRIC_NAMES, math.nan)
            val = self.validate() if validated else skipped
            self.epoch += 1
            used = self.last_step_lr if self.last_step_lr is not None else self.optimizer.param_groups[0]["lr"]
            row: dict[str, float] = {"epoch": self.epoch, "lr": used,  # the rate of the epoch's last step
                                     "image_size": self.image_size}
            row.update({f"train_{k}": v for k, v in train.items()})
            row.update({f"val_{k}": v for k, v in val.items()})
            if self.ema is not None:
                ema_val = self.validate(self.ema.model) if validated else skipped
                row.update({f"val_ema_{k}": v for k, v in ema_val.items()})
            row["images_per_s"] = len(self.data.train) * self.epoch_share / train_time
            row["epoch_time_s"] = time.perf_counter() - t0
            self.history.append(row)
            if validated or not self.cfg.monitor.startswith("val_"):
                self._update_best(row)
            self._emit("on_epoch_end", row)
            stop = self.cfg.patience > 0 and self.stale_epochs >= self.cfg.patience
            if stop and self.dist.is_main:
                logger.info(f"early stop: {self.cfg.monitor} did not improve for {self.cfg.patience} epochs")
            if broadcast_flag(self.dist, stop, self.device):
                break
            if self.budget_over() and self.budget.skipped and self.dist.is_main:  # type: ignore[union-attr]
                logger.info(f"epoch {self.epoch}: {self.budget.describe()}")  # type: ignore[union-attr]
        self._emit("on_fit_end")
        barrier(self.dist)

    def validates_after(self, epoch: int) -> bool:
        """Whether epoch ``epoch`` (1-based) ends with validation: every ``--val-every``-th and always
        the last, so the weights a run ends with are scored. Skipping saves forward passes over the
        validation split (two with ``--ema``); the trained weights do not depend on it."""
        every = self.cfg.val_every
        return epoch >= self.cfg.epochs or (every > 0 and epoch % every == 0) or self.budget_over()

    def budget_over(self) -> bool:
        """The --time-budget's schedule has ended: no optimiser step is left (False without a budget)."""
        return self.budget is not None and self.budget.over

    def _emit(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)

    def _set_image_size(self) -> None:
        """Progressive resizing: the training and validation images at this epoch's size. The learning
        rate schedule counts steps, and steps per epoch do not depend on the size, so it runs on. Under
        a --time-budget the size is that of the epoch the schedule has reached (it may skip steps)."""
        reached = self.budget.epoch_reached(self.steps_per_epoch) if self.budget is not None else 0
        size = self.cfg.size_at(max(self.epoch, reached), self.default_size)
        if size != self.image_size:
            self.data, self.image_size, self.cache = self._images_at(size), size, None  # cached features: old size
            if self.dist.is_main:
                logger.info(f"epoch {self.epoch + 1}: image size {size}")

    def _images_at(self, size: int) -> DataBundle:
        """The split's images at ``size``, decoded from the files at that size as ``evaluate``, ``predict``
        and ``serve`` decode them, so a checkpoint saved at any stage meets the same pixels there as in
        training (resizing decoded images instead blurs them differently: a 128 px checkpoint of a
        96:128:160 run lost 0.5% on AHE). Images given in memory are resized (antialiased)."""
        full = self.full_data
        if size == full.train.images.shape[-1]:
            return full
        if self.given_data:
            return DataBundle(full.train.resized(size), full.val.resized(size), full.test, full.skipped, full.source)
        cfg = self.cfg
        data = load_data(cfg.data, size, cfg.val_fraction, cfg.seed, cfg.cache_dir, cfg.shapes_per_class, cfg.max_pixels)
        if data.train.names != full.train.names or data.val.names != full.val.names:
            raise UserError(f"the images under '{cfg.data}' changed during training (files added, removed or "
                            f"renamed before the {size} px epochs): restore them, or start a new run")
        return data

    def _begin_epoch(self) -> None:
        """This epoch's image size (progressive resizing); transfer learning: this epoch's freeze state,
        a fresh schedule when a new phase starts, and the frozen-feature cache while the whole backbone
        is frozen (not with mixing, which changes the inputs)."""
        self._set_image_size()
        if self.finetune.begin_epoch(self.epoch, self.optimizer):
            self.schedule = build_schedule(self.optimizer, self.cfg, self.steps_per_epoch, self.finetune.phase_epochs())
            logger.info(f"epoch {self.epoch + 1}: fine-tuning phase, fresh {self.cfg.schedule} schedule over "
                        f"{self.finetune.phase_epochs()} epochs")
        self.cache = feature_cache.update(
            self.cache, self.model, self.data, self.norm, self.device, self.augment,
            self.cfg.feature_cache and not self.mixing.enabled,
            self.dist.enabled, self.cfg.eval_batch_size, self.cfg.channels_last, self.cfg.bf16)

    def train_epoch(self) -> dict[str, float]:
        """One pass over the training split: micro-batches, an optimiser step at the end of each window."""
        self.net.train()
        resumed = self.progress  # set when a checkpoint from inside this epoch was restored
        order = resumed.order if resumed else torch.randperm(len(self.data.train), generator=self.order_gen)
        plan = list(plan_epoch(order, self.batch_size, self.cfg.accumulate, self.dist.rank, self.dist.world_size))
        seeds = resumed.seeds if resumed else batch_seeds(len(plan), self.aug_gen)  # same with or without threads
        progress = self.progress = resumed or EpochProgress(order, seeds)
        metrics = progress.metrics(len(self.classes), self.device)
        start = progress.next_batch
        threads = 0 if self.cache is not None else self.cfg.data_threads
        stream = prefetch(lambda i: self._batch(plan[i], seeds[i]), range(start, len(plan)), threads)
        with contextlib.closing(stream) as batches:
            for i, mb, (x, target) in zip(range(start, len(plan)), plan[start:], batches):
                sync = contextlib.nullcontext() if mb.ends_window or not self.dist.enabled else self.net.no_sync()
                with sync:
                    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                        logits, loss_sum = self.forward_loss(x, target)
                    (loss_sum * mb.loss_scale).backward()
                self.guard.observe(loss_sum)
                if mb.ends_window:
                    self._optimizer_step(mb.window_samples, i)
                # Under mixing, accuracy counts agreement with each image's larger label share and
                # the loss is the one optimised, against the mixed targets.
                y = target if target.ndim == 1 else target.argmax(1)
                metrics.update(logits, y, loss_sum)
                progress.record(i, logits, y, loss_sum)
                self._emit("on_batch_end", BatchInfo(self.epoch + 1, i, len(plan), len(target), loss_sum))
                if mb.ends_window:
                    self._between_steps()
                    if self.budget_over():  # --time-budget: the schedule has ended inside this epoch
                        break
        self.epoch_share = (progress.next_batch - start) / len(plan)  # trained on in this call (for images/s)
        self.progress = None
        return metrics.compute()

    def _optimizer_step(self, window_samples: int, batch_index: int) -> None:
        """Apply the window's gradient (callbacks see it first), clear it, advance the schedule. A window
        with a NaN/Inf loss is skipped (``--skip-nonfinite``) or stops the run."""
        info = StepInfo(self.epoch + 1, self.global_step + 1, window_samples)
        if not self.guard.window_is_finite(self.dist):
            self.optimizer.zero_grad(set_to_none=True)
            where = f"epoch {self.epoch + 1}, optimiser step {self.global_step + 1} (micro-batch {batch_index + 1})"
            logger.warning(self.guard.skip_or_stop(where, self._kept()))
            return
        self._emit("on_before_step", info)
        self.last_step_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()
        if self.budget is not None:  # the schedule follows the clock where it is ahead (rank 0's clock)
            self.budget.catch_up(self.schedule, broadcast_value(self.dist, self.budget.spent(), self.device))
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1
        self._emit("on_step_end", info)

    def _between_steps(self) -> None:
        """After an optimiser step: ``last`` every --checkpoint-every steps, with the position in the epoch;
        on SIGINT/SIGTERM that checkpoint, then a clean stop."""
        every = self.cfg.checkpoint_every
        if (every and self.global_step % every == 0) or self.stop.requested:  # the same on every rank
            self.checkpoint_in_epoch()
        if self.stop.requested:
            raise TrainingInterrupted(f"stopped by {self.stop.name} in epoch {self.epoch + 1} after optimiser step "
                                      f"{self.global_step}; checkpoint written: continue with "
                                      f"`cnnlab train --resume {self.run_dir}`", self.stop.signum or 2)

    def checkpoint_in_epoch(self) -> None:
        """Write ``last`` with every process's position in the current epoch (all ranks call this)."""
        in_epoch = gather_to_main(self.dist, self.progress.state())  # type: ignore[union-attr]
        if self.dist.is_main:
            save_checkpoint(self.run_dir, "last", {**self.state(), "in_epoch": in_epoch})  # type: ignore[arg-type]

    def _kept(self) -> str:
        """What a stopped run leaves to resume from, for the message."""
        path = checkpoint_path(self.run_dir, "last")  # type: ignore[arg-type]
        if self.dist.is_main and path.is_file():
            return f"the last good checkpoint is kept ({path})"
        return "and no checkpoint had been written yet"

    def _batch(self, mb: MicroBatch, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(model input, target) of one micro-batch: cached features, or its images prepared, augmented
        and mixed with a generator of its own (safe on a background thread). The target is class
        indices, or class probabilities where the batch was mixed."""
        y = self.data.train.labels[mb.indices].to(self.device)
        if self.cache is not None:
            return self.cache.train[mb.indices.to(self.cache.train.device)], y
        g = torch.Generator(device=self.device).manual_seed(seed + self.dist.rank)  # each rank its own numbers
        images = self.data.train.images[mb.indices]
        x = prepare(images, self.norm, self.device, self.augment, g, self.cfg.channels_last)
        return self.mixing.apply(x, y, len(self.classes), g)

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, summed per-sample loss) of one micro-batch; ``x`` is cached features while the
        feature cache is on. Auxiliary logits (inception) add ``aux_weight`` times their loss."""
        if self.cache is not None:
            out = self.model.head(x)
        elif self.compiled_net is not None and len(x) == self.batch_size:
            out = self.compiled_net(x)
        else:  # also an epoch's last, smaller micro-batch under --compile: no second compilation for it
            out = self.net(x)
        logits = logits_of(out).float()
        loss = self.criterion(logits, y)
        aux = aux_logits_of(out)
        if aux is not None and self.cfg.aux_weight:
            loss = loss + self.cfg.aux_weight * self.criterion(aux.float(), y)
        return logits, loss

    @torch.no_grad()
    def validate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Metrics of ``model`` (default: the trained weights; or their EMA) on the validation split."""
        model = model or self.model
        model.eval()
        metrics = EpochMetrics(len(self.classes), self.device)
        val = self.data.val
        bs = self.cfg.eval_batch_size
        for i in range(self.dist.rank * bs, len(val), bs * self.dist.world_size):
            if self.cache is None:
                net, x = model, prepare(val.images[i : i + bs], self.norm, self.device, channels_last=self.cfg.channels_last)
            else:
                net, x = model.head, self.cache.val[i : i + bs]
            y = val.labels[i : i + bs].to(self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                logits = logits_of(net(x)).float()
            metrics.update(logits, y, nn.functional.cross_entropy(logits, y, reduction="sum"))
        if len(val) == 0:
            return {k: math.nan for k in METRIC_NAMES}
        return metrics.compute()

    # ----------------------------------------------------------------- bookkeeping
    def _update_best(self, row: dict[str, float]) -> None:
        """``best`` and ``stale_epochs`` after this epoch (what best.pt and early stopping go by); with
        ``--ema`` the better of the raw and the averaged weights counts, and the checkpoint serves it."""
        key = self.cfg.monitor
        if key not in row:
            raise UserError(f"--monitor {key} is not a history column: use one of {', '.join(k for k in row if k.startswith('val_'))}")
        value = row[key]
        lower_is_better = key.endswith("loss")
        ema_value = row.get(key.replace("val_", "val_ema_", 1), math.nan) if key.startswith("val_") else math.nan
        self.serve_ema = not math.isnan(ema_value) and (
            math.isnan(value) or (ema_value < value if lower_is_better else ema_value > value))
        if self.serve_ema:
            value = ema_value
        better = self.best is None or (not math.isnan(value) and (
            value < self.best["value"] if lower_is_better else value > self.best["value"]))
        if better:
            self.best = {"value": value, "epoch": self.epoch}
            self.stale_epochs = 0
        else:
            self.stale_epochs += 1
