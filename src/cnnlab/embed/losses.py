"""Metric-learning losses from pytorch-metric-learning, and the P x K batch sampler.

``triplet``: TripletMarginLoss (margin 0.2, as FaceNet) on the hardest positive and hardest negative
of each anchor in the batch (BatchHardMiner). ``contrastive``: the Siamese ContrastiveLoss on every
pair in the batch (positives pulled to 0, negatives pushed beyond the margin, 1 by default).
``arcface``: ArcFaceLoss, an additive angular margin softmax over the training identities; its class
centres are parameters, trained and checkpointed with the network. ``whiten``: no loss; the head is
fitted in closed form (cnnlab.embed.whiten), so there is nothing to build here but an empty module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from pytorch_metric_learning import losses, miners, samplers
from pytorch_metric_learning.utils import common_functions

from cnnlab.embed.config import EmbedConfig


def build_loss(cfg: EmbedConfig, n_identities: int) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """(loss, miner or None) for ``cfg.loss``."""
    if cfg.loss == "triplet":
        return losses.TripletMarginLoss(margin=cfg.margin if cfg.margin is not None else 0.2), miners.BatchHardMiner()
    if cfg.loss == "contrastive":
        return losses.ContrastiveLoss(pos_margin=0, neg_margin=cfg.margin if cfg.margin is not None else 1.0), None
    if cfg.loss == "whiten":
        return torch.nn.Module(), None
    margin = {} if cfg.margin is None else {"margin": cfg.margin}
    return losses.ArcFaceLoss(n_identities, cfg.dim, **margin), None


@contextlib.contextmanager
def _numpy_random(seed: int) -> Iterator[None]:
    """pytorch-metric-learning's samplers draw from its module-level ``NUMPY_RANDOM`` (NumPy's global
    state by default); a private, seeded one keeps runs reproducible without touching that global."""
    saved = common_functions.NUMPY_RANDOM
    common_functions.NUMPY_RANDOM = np.random.RandomState(seed)
    try:
        yield
    finally:
        common_functions.NUMPY_RANDOM = saved


def pk_batches(labels: torch.Tensor, p: int, k: int, n_batches: int, seed: int) -> list[torch.Tensor]:
    """``n_batches`` index batches of ``p`` identities x ``k`` images (MPerClassSampler; an identity
    with fewer than ``k`` images repeats some, which augmentation turns into different views)."""
    p = min(p, int(labels.max()) + 1)
    sampler = samplers.MPerClassSampler(labels.numpy(), m=k, batch_size=p * k, length_before_new_iter=n_batches * p * k)
    with _numpy_random(seed):
        order = torch.tensor(list(iter(sampler)), dtype=torch.long)
    return list(order.view(-1, p * k))
