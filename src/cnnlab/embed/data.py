"""Face images for an embedding run, split by identity into train / dev / test."""

from __future__ import annotations

from cnnlab.data.dataset import load_images
from cnnlab.data.identities import IDENTITIES, make_identities
from cnnlab.data.split import IdentitySplit, identity_split, select_identities
from cnnlab.embed.config import EmbedConfig
from cnnlab.errors import UserError

SPLITS = ("train", "dev", "test")
DATASET_SEED = 0  # the generated people are the same in every run; --seed changes who goes where


def load_faces(cfg: EmbedConfig, image_size: int) -> IdentitySplit:
    """``cfg.data``: a folder with one sub-folder per person (greyscale files become 3 equal
    channels), or ``identities``. Identities are shuffled with ``cfg.seed`` and split."""
    if cfg.data == IDENTITIES:
        images = make_identities(range(cfg.identities), cfg.per_identity, image_size, DATASET_SEED)
    else:
        images = load_images(cfg.data, image_size).pool
    counts = images.class_counts()
    if min(counts) < 2:
        lonely = images.classes[counts.index(min(counts))]
        raise UserError(f"identity '{lonely}' has {min(counts)} image(s): every person needs at least 2 "
                        "(pairs of the same person are what verification is tested on)")
    split = identity_split(images, *cfg.split_sizes(len(images.classes)), seed=cfg.seed)
    if cfg.train_per_identity:
        split.train = select_identities(split.train, list(range(len(split.train.classes))), cfg.train_per_identity)
    return split
