"""Fine-tuning plan for pretrained backbones: what trains in which epoch, and at which learning rate.

* ``--freeze none|head|N``: in the main phase train everything, only the head, or the head plus the
  top N stages of the backbone (stages are the backbone's natural resolution levels, see
  ``cnnlab.models.backbones``).
* ``--freeze-bn`` (default) keeps frozen stages in eval mode: BatchNorm running statistics never
  change there and dropout is off. ``--train-bn`` lets their BatchNorm layers keep training.
* ``--lr-ratio r``: discriminative learning rates. Parameter groups run from the output backwards,
  head first (the ``lr`` column of the history is the head's), and group ``i`` gets ``lr * r**i``.
* ``--freeze-epochs E``: phase 0 trains the head alone for E epochs with its own schedule; phase 1
  then unfreezes (``--unfreeze all`` at once, or ``gradual``: one more stage per epoch, top first)
  with a fresh schedule over the remaining epochs.

All parameter groups are in the optimiser from the start (frozen parameters have no gradient, so
the optimiser skips them), so the optimiser's state has the same shape in every phase. The freeze
state of every epoch follows from the config; the checkpoint also records it, and resume restores it
exactly before the next epoch starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cnnlab.errors import UserError
from cnnlab.models.backbones import TransferModel
from cnnlab.runs.config import TrainConfig


logger = logging.getLogger("cnnlab")


class FineTune:
    def __init__(self, model: nn.Module, cfg: TrainConfig, distributed: bool = False) -> None:
        self.model, self.cfg = model, cfg
        self.transfer = isinstance(model, TransferModel)
        if not self.transfer:
            used = [flag for flag, on in (("--freeze", cfg.freeze != "none"), ("--freeze-epochs", cfg.freeze_epochs > 0),
                                          ("--lr-ratio", cfg.lr_ratio != 1), ("--train-bn", cfg.train_bn),
                                          ("--unfreeze", cfg.unfreeze != "all")) if on]
            if used:
                raise UserError(f"{used[0]} needs a backbone with stages, and {cfg.model} has none: "
                                "choose a pretrained backbone (see `cnnlab models`) or drop the flag")
            self.n_stages = self.target = 0
        else:
            self.n_stages = len(model.stages)
            self.target = self._target()
        if distributed and (cfg.freeze_epochs or cfg.unfreeze == "gradual"):
            raise UserError("--freeze-epochs/--unfreeze gradual change what trains during the run, which distributed "
                            "training does not support: run them on one process, or use a fixed --freeze")
        self.phase = self.phase_of(0)
        self.trainable_stages = self.stages_at(0)
        self._apply()

    def _target(self) -> int:
        f = self.cfg.freeze
        if f == "none":
            return self.n_stages
        if f == "head":
            return 0
        n = int(f)
        if n > self.n_stages:
            raise UserError(f"--freeze {n}: {self.cfg.model} has {self.n_stages} stages "
                            f"({', '.join(s for s, _ in self.model.stages)}); use 0-{self.n_stages}, head or none")
        return n

    # ------------------------------------------------------------ the plan
    def phase_of(self, epoch: int) -> int:
        return 0 if epoch < self.cfg.freeze_epochs else 1

    def phase_epochs(self, phase: int | None = None) -> int:
        """Length of a phase's schedule in epochs (the current phase by default)."""
        phase = self.phase if phase is None else phase
        return self.cfg.freeze_epochs if phase == 0 else max(1, self.cfg.epochs - self.cfg.freeze_epochs)

    def stages_at(self, epoch: int) -> int:
        """Number of trainable backbone stages in ``epoch`` (counted from the top)."""
        if not self.transfer or epoch < self.cfg.freeze_epochs:
            return 0
        if self.cfg.unfreeze == "gradual":
            return min(self.target, epoch - self.cfg.freeze_epochs + 1)
        return self.target

    def param_groups(self) -> Iterable[Any]:
        """For the optimiser: plain parameters, or named groups with discriminative learning rates."""
        if not self.transfer:
            return self.model.parameters()
        out = []
        for i, (name, params) in enumerate(self.model.groups()):
            lr = self.cfg.lr * self.cfg.lr_ratio ** i
            out.append({"params": params, "lr": lr, "base_lr": lr, "name": name})
        return out

    # ------------------------------------------------------------ applying it
    def _apply(self) -> None:
        if self.transfer:
            self.model.set_trainable_stages(self.trainable_stages, self.cfg.train_bn)

    def begin_epoch(self, epoch: int, optimizer: torch.optim.Optimizer) -> bool:
        """Set the freeze state of ``epoch``. Returns True when a new phase starts: the learning rates
        are then back at their base values and the caller builds a fresh schedule."""
        phase, stages = self.phase_of(epoch), self.stages_at(epoch)
        new_phase = phase != self.phase
        if stages != self.trainable_stages:
            self.trainable_stages = stages
            self._apply()
            logger.info(f"epoch {epoch + 1}: {self.describe()}")
        if new_phase:
            self.phase = phase
            for g in optimizer.param_groups:
                g["lr"] = g.get("base_lr", self.cfg.lr)
                g.pop("initial_lr", None)
        return new_phase

    def describe(self) -> str:
        if not self.transfer:
            return "training every parameter"
        n, total = self.trainable_stages, self.n_stages
        if n == total:
            what = f"training every stage of {total}"
        else:
            names = [s for s, _ in self.model.stages[total - n:]]
            what = "training the head only" if n == 0 else f"training the head and {', '.join(names)} ({n} of {total} stages)"
        return what + ("; frozen BatchNorm layers keep training" if self.cfg.train_bn and n < total else "")

    # ------------------------------------------------------------ checkpoints
    def state(self) -> dict[str, Any] | None:
        if not self.transfer:
            return None
        return {"phase": self.phase, "trainable_stages": self.trainable_stages, "train_bn": self.cfg.train_bn,
                "trainable": [name for name, ps in self.model.groups() if any(p.requires_grad for p in ps)]}

    def restore(self, state: dict[str, Any] | None) -> bool:
        """Put back the saved freeze state; True when its phase differs from the one at epoch 0 (the
        caller must then rebuild that phase's schedule before loading the schedule's state)."""
        if not self.transfer or state is None:
            return False
        changed = int(state["phase"]) != self.phase
        self.phase = int(state["phase"])
        self.trainable_stages = int(state["trainable_stages"])
        self._apply()
        return changed
