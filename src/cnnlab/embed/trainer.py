"""Training an embedding network with a metric-learning loss, in the run-directory layout of
classification runs: config.yaml, split/{train,dev,test}.txt, history.csv/.json, curves.png,
checkpoints/last.pt (every epoch, for resume) and checkpoints/best.pt (lowest dev EER).

Each epoch draws P x K batches (``losses.pk_batches``), augments each batch with a generator seeded
per batch (``batch_seeds``), and ends with the dev EER of all dev pairs. ``--loss whiten`` takes no
gradient steps: the head is fitted once, in closed form (``embed.whiten``), and the run has one epoch.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from cnnlab import atomic
from cnnlab.data.augment import augment_config, batch_seeds
from cnnlab.data.batch import prepare
from cnnlab.data.normalize import Normalization
from cnnlab.data.split import IdentitySplit
from cnnlab.device import pick_device
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.data import SPLITS, load_faces
from cnnlab.embed.encoders import NetEncoder, PooledFeatures
from cnnlab.embed.losses import build_loss, pk_batches
from cnnlab.embed.plots import plot_embed_curves
from cnnlab.embed.protocol import pair_distances
from cnnlab.embed.whiten import SHRINKAGES, within_class_whitening
from cnnlab.errors import UserError
from cnnlab.metrics.verification import eer, roc
from cnnlab.models import model_info
from cnnlab.models.backbones import TransferModel
from cnnlab.models.embedding import create_embedding_model
from cnnlab.models.weights import load_initial_weights
from cnnlab.runs import run as runs
from cnnlab.runs.checkpoint import load_checkpoint, save_epoch_checkpoints
from cnnlab.runs.inference import predict_logits

log = logging.getLogger("cnnlab")


def image_size_for(cfg: EmbedConfig) -> int:
    info = model_info(cfg.model)
    size = cfg.image_size or info.default_image_size
    if size < info.min_image_size:
        raise UserError(f"--image-size {size} is too small for {cfg.model}: use at least {info.min_image_size}")
    return size


class EmbedTrainer:
    def __init__(self, cfg: EmbedConfig, split: IdentitySplit | None = None, checkpoint: dict[str, Any] | None = None,
                 run_dir: str | Path | None = None) -> None:
        """Start a new run, or (with ``checkpoint`` and ``run_dir``) continue one; see ``resume``."""
        self.cfg = cfg.validate()
        self.device = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        self.image_size = image_size_for(cfg)
        self.split = split or load_faces(cfg, self.image_size)
        info = model_info(cfg.model)
        self.norm = (Normalization(info.mean, info.std) if info.mean and info.std
                     else Normalization.measure(self.split.train.images))
        self.augment = augment_config(cfg.augment)
        self.model = create_embedding_model(cfg.model, cfg.dim, **cfg.model_options)
        if cfg.freeze_backbone and not isinstance(self.model.net, TransferModel):
            raise UserError(f"--freeze-backbone needs a transfer backbone such as mobilenet_v2, not {cfg.model}")
        if cfg.loss == "whiten":
            self._check_whitening()
        if checkpoint is None and cfg.pretrained:
            log.info(load_initial_weights(self.model.net, cfg.model, cfg.pretrained, None))
        if cfg.freeze_backbone:
            self.model.net.set_trainable_stages(0)
        self.model.to(self.device)
        self.loss, self.miner = build_loss(cfg, len(self.split.train.classes))
        self.loss.to(self.device)
        params = [*(p for p in self.model.parameters() if p.requires_grad), *self.loss.parameters()]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.batch_size = min(cfg.ids_per_batch, len(self.split.train.classes)) * cfg.images_per_id
        self.steps_per_epoch = max(1, len(self.split.train) // self.batch_size)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, cfg.epochs * self.steps_per_epoch)
        self.aug_gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.epoch, self.history, self.best = 0, [], None
        if checkpoint is not None:
            self.run_dir = Path(run_dir)  # type: ignore[arg-type]
            self._restore(checkpoint)
        else:
            self.run_dir = runs.new_run_dir(cfg)  # type: ignore[arg-type]  # reads .output, .model, .data
            atomic.write_text(self.run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            for name in SPLITS:
                runs.write_split(self.run_dir, name, getattr(self.split, name))
        # after _restore: a resumed run's frozen backbone is the checkpoint's
        self.cache = self._backbone_features() if cfg.freeze_backbone and self.augment.is_identity() else None

    @classmethod
    def resume(cls, run_dir: str | Path, epochs: int | None = None) -> EmbedTrainer:
        """Continue ``run_dir`` from its last checkpoint (same config and split; ``epochs`` may be raised)."""
        ckpt = load_checkpoint(run_dir, "last")
        cfg = EmbedConfig.from_dict(ckpt["config"], where=f"{run_dir} checkpoint")
        if epochs is not None:
            cfg.epochs = epochs
        return cls(cfg, checkpoint=ckpt, run_dir=run_dir)

    def state(self) -> dict[str, Any]:
        return {
            "format": 1, "kind": "embedding", "epoch": self.epoch,
            "model": self.model.state_dict(), "loss": self.loss.state_dict(),
            "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "augment": self.aug_gen.get_state()},
            "history": self.history, "best": self.best, "config": self.cfg.to_dict(),
            "normalization": self.norm.to_dict(), "image_size": self.image_size,
            "identities": {name: list(getattr(self.split, name).classes) for name in SPLITS},
        }

    def _restore(self, ckpt: dict[str, Any]) -> None:
        if list(ckpt["identities"]["train"]) != self.split.train.classes:
            raise UserError(f"the training identities changed since {self.run_dir} was trained: resume with the same data")
        self.model.load_state_dict(ckpt["model"])
        self.loss.load_state_dict(ckpt["loss"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, self.cfg.epochs * self.steps_per_epoch)
        self.schedule.load_state_dict({**ckpt["schedule"], "T_max": self.cfg.epochs * self.steps_per_epoch})
        self.epoch, self.history, self.best = int(ckpt["epoch"]), list(ckpt["history"]), ckpt["best"]
        self.norm = Normalization.from_dict(ckpt["normalization"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.aug_gen.set_state(ckpt["rng"]["augment"])

    def fit(self) -> Path:
        if self.cfg.loss == "whiten":
            return self._fit_whitening()
        while self.epoch < self.cfg.epochs:
            t0 = time.perf_counter()
            loss = self.train_epoch()
            train_time = time.perf_counter() - t0
            dev_eer = self.dev_eer()
            self.epoch += 1
            row = {"epoch": self.epoch, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": loss,
                   "dev_eer": dev_eer, "images_per_s": self.steps_per_epoch * self.batch_size / train_time,
                   "epoch_time_s": time.perf_counter() - t0}
            self.history.append(row)
            improved = self.best is None or dev_eer < self.best["value"]
            if improved:
                self.best = {"value": dev_eer, "epoch": self.epoch}
            self._save(improved)
            log.info("epoch %d/%d  train loss %.4f | dev EER %.4f | %.0f img/s, %.1fs", self.epoch, self.cfg.epochs,
                     loss, dev_eer, row["images_per_s"], row["epoch_time_s"])
        return self.run_dir

    def _check_whitening(self) -> None:
        features = self.model.net.head[-1].in_features
        if self.cfg.dim > features:
            raise UserError(f"--dim {self.cfg.dim} is more than the {features} features {self.cfg.model} gives: use "
                            f"--dim {features} (or fewer, to keep only the leading principal directions) with --loss whiten")
        if int(torch.bincount(self.split.train.labels).min()) < 2:
            raise UserError("--loss whiten learns how one person's photos vary: give every training person at least 2 images")

    def _fit_whitening(self) -> Path:
        """The head in closed form, once for each candidate shrinkage; the one with the lowest dev EER is
        kept and saved as epoch 1 (a resumed run that has it is done)."""
        if self.epoch:
            return self.run_dir
        t0 = time.perf_counter()
        linear = self.model.net.head[-1]
        features, labels = self.cache["train"].cpu(), self.split.train.labels  # type: ignore[index]

        @torch.no_grad()
        def set_head(weight: torch.Tensor, bias: torch.Tensor) -> None:
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)

        fits = []
        for shrinkage in SHRINKAGES:
            weight, bias = within_class_whitening(features, labels, self.cfg.dim, shrinkage)
            set_head(weight, bias)
            fits.append((self.dev_eer(), shrinkage, weight, bias))
            log.info("within-class whitening, shrinkage %.2f: dev EER %.4f", shrinkage, fits[-1][0])
        dev_eer, shrinkage, weight, bias = min(fits, key=lambda f: f[0])
        set_head(weight, bias)
        self.epoch, elapsed = 1, time.perf_counter() - t0
        self.history.append({"epoch": 1, "lr": 0.0, "train_loss": math.nan, "dev_eer": dev_eer,
                             "images_per_s": len(labels) / elapsed, "epoch_time_s": elapsed, "shrinkage": shrinkage})
        self.best = {"value": dev_eer, "epoch": 1}
        self._save(True)
        log.info("kept shrinkage %.2f: dev EER %.4f", shrinkage, dev_eer)
        return self.run_dir

    def _backbone_features(self) -> dict[str, torch.Tensor]:
        """Train and dev images through the frozen backbone, once: with no augmentation the backbone's
        output never changes, so each epoch trains the head on these vectors."""
        body = PooledFeatures(self.model.net)
        return {name: predict_logits(body, getattr(self.split, name).images, self.norm, self.device,
                                     self.cfg.eval_batch_size).to(self.device) for name in ("train", "dev")}

    def train_epoch(self) -> float:
        self.model.train()
        train = self.split.train
        batches = pk_batches(train.labels, self.cfg.ids_per_batch, self.cfg.images_per_id, self.steps_per_epoch,
                             seed=self.cfg.seed * 100_003 + self.epoch)
        total, count = 0.0, 0
        for index, seed in zip(batches, batch_seeds(len(batches), self.aug_gen)):
            y = train.labels[index].to(self.device)
            if self.cache is not None:
                emb = self.model.project(self.cache["train"][index.to(self.device)])
            else:
                g = torch.Generator(device=self.device).manual_seed(seed)
                emb = self.model(prepare(train.images[index], self.norm, self.device, self.augment, g))
            loss = self.loss(emb, y, self.miner(emb, y)) if self.miner is not None else self.loss(emb, y)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.schedule.step()
            total, count = total + float(loss.detach()) * len(y), count + len(y)
        return total / max(1, count)

    def encoder(self) -> NetEncoder:
        return NetEncoder(self.model, self.norm, self.device, self.cfg.eval_batch_size)

    @torch.no_grad()
    def dev_eer(self) -> float:
        if self.cache is not None:
            self.model.eval()
            embeddings = self.model.project(self.cache["dev"]).cpu()
        else:
            embeddings = self.encoder()(self.split.dev.images)
        pairs = pair_distances(embeddings, self.split.dev.labels)
        return eer(roc(pairs.genuine, pairs.impostor)) if pairs.genuine.size else math.nan

    def _save(self, improved: bool) -> None:
        save_epoch_checkpoints(self.run_dir, self.state(), improved)
        atomic.write_json(self.run_dir / "history.json", self.history)
        atomic.write_csv(self.run_dir / "history.csv", self.history)
        plot_embed_curves(self.history, self.run_dir / "curves.png")
