"""Seeded splits: stratified validation (the same fraction of every class, the same files every time)
and identity-disjoint train/dev/test for face embeddings (no person in two parts)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cnnlab.data.imageset import ImageSet
from cnnlab.errors import UserError


def stratified_split(labels: torch.Tensor, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return sorted (train_index, val_index).

    Each class contributes ``round(val_fraction * n_class)`` images to validation (at least one when the
    class has two or more images and the fraction is positive), drawn with a generator seeded by
    ``seed``, so the split depends only on the labels, the fraction and the seed.
    """
    g = torch.Generator().manual_seed(seed)
    train, val = [], []
    for k in torch.unique(labels).tolist():
        idx = torch.nonzero(labels == k).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val = round(val_fraction * len(idx))
        if val_fraction > 0 and n_val == 0 and len(idx) >= 2:
            n_val = 1
        val.append(idx[:n_val])
        train.append(idx[n_val:])
    return torch.cat(train).sort().values, torch.cat(val).sort().values


@dataclass
class IdentitySplit:
    """Three identity-disjoint image sets: people in ``test`` (and ``dev``) are never trained on."""

    train: ImageSet
    dev: ImageSet
    test: ImageSet

    def __post_init__(self) -> None:
        sets = [set(self.train.classes), set(self.dev.classes), set(self.test.classes)]
        leaked = (sets[0] & sets[1]) | (sets[0] & sets[2]) | (sets[1] & sets[2])
        if leaked:
            raise AssertionError(f"identity split leaks {sorted(leaked)[:3]} between train, dev and test")


def identity_split(images: ImageSet, n_train: int, n_dev: int, n_test: int, seed: int) -> IdentitySplit:
    """Shuffle the identities (classes) with ``seed`` and give the first ``n_train`` to train, the
    next ``n_dev`` to dev and the next ``n_test`` to test; each part is relabelled 0.. in its own
    class list."""
    n = len(images.classes)
    if min(n_train, n_dev, n_test) < 1 or n_train + n_dev + n_test > n:
        raise UserError(f"cannot split {n} identities into {n_train} train, {n_dev} dev and {n_test} test: "
                        "each needs at least one and together at most the number of identities")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    parts = order[:n_train], order[n_train : n_train + n_dev], order[n_train + n_dev : n_train + n_dev + n_test]
    return IdentitySplit(*(select_identities(images, sorted(p)) for p in parts))


def select_identities(images: ImageSet, identities: list[int], per_identity: int | None = None) -> ImageSet:
    """The images of ``identities`` (class indices), relabelled 0.. in that order; with
    ``per_identity``, only each identity's first that many images."""
    new_label = torch.full((len(images.classes),), -1, dtype=torch.long)
    new_label[torch.tensor(identities, dtype=torch.long)] = torch.arange(len(identities))
    keep = []
    for k in identities:
        idx = torch.nonzero(images.labels == k).flatten()
        keep.append(idx if per_identity is None else idx[:per_identity])
    index = torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)
    part = images.subset(index)
    return ImageSet(part.images, new_label[part.labels], part.names, [images.classes[k] for k in identities])
