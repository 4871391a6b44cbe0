"""A projection head fitted in closed form: within-class whitening of a frozen backbone's features.

Off-the-shelf ImageNet features already separate faces somewhat, but their largest directions of
variation are pose, lighting and background, which vary as much within one person as between people.
Within-class covariance normalisation (WCCN; Hatch, Kajarekar and Stolcke 2006, a staple of speaker and
face verification) learns, from the training people's features, the covariance of the differences
between images of the same person, and rescales the feature space so that this covariance becomes the
identity: directions in which one person's photos vary are shrunk, directions that stay put within a
person but differ between people keep their weight. Cosine distance is then taken on the whitened
vectors. It needs no gradient steps, only a few images per person, and cannot overfit a small training
set the way a trained head can (ORL: 20 people).

The covariance is shrunk towards a multiple of the identity (Ledoit-Wolf style) because 1280-d features
of a few hundred images give a singular estimate. The shrinkage is picked on the dev people.
"""

from __future__ import annotations

import torch

SHRINKAGES = (0.03, 0.1, 0.3, 0.6)  # candidates tried on the dev people; the lowest dev EER wins


def within_class_whitening(features: torch.Tensor, labels: torch.Tensor, dim: int,
                           shrinkage: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight ``dim x D``, bias ``dim``) of the linear map ``x -> W (x - mean)``: projected on the
    ``dim`` leading principal directions of the training features (all of them when ``dim`` is ``D``),
    then whitened so that the shrunk within-class covariance becomes the identity."""
    x = features.double()
    mean = x.mean(0)
    centred = x - mean
    if dim < x.shape[1]:
        basis = torch.linalg.svd(centred, full_matrices=False).Vh[:dim].T  # D x dim
    else:
        basis = torch.eye(x.shape[1], dtype=x.dtype)
    z = centred @ basis
    within = torch.zeros(dim, dim, dtype=x.dtype)
    for person in labels.unique():
        d = z[labels == person]
        d = d - d.mean(0)
        within += d.T @ d
    within /= len(z)
    within = (1 - shrinkage) * within + shrinkage * within.diagonal().mean() * torch.eye(dim, dtype=x.dtype)
    values, vectors = torch.linalg.eigh(within)
    inverse_sqrt = vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T
    weight = inverse_sqrt @ basis.T
    return weight.float(), (-weight @ mean).float()
