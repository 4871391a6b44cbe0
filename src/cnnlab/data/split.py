"""Stratified, seeded validation split: the same fraction of every class, the same files every time."""

from __future__ import annotations

import torch


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
