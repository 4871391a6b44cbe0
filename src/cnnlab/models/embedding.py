"""Embedding networks for faces: a registry model whose new head is a linear projection to ``dim``
outputs, followed by L2 normalisation, so distances between embeddings lie in [0, 2].

Every registry model ends in a freshly initialised linear layer sized by ``num_classes`` (ahe_cnn's
last fully connected layer, a ``ClassifierHead`` on a transfer backbone); built with
``num_classes=dim`` that layer is the projection head, and the backbone keeps its published weights
with ``--pretrained``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.models.outputs import logits_of
from cnnlab.models.registry import create_model


class EmbeddingNet(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(logits_of(self.net(x)).float(), dim=1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """Embeddings from a transfer backbone's feature vectors (``net.features(x)``): the projection
        head and L2 normalisation only, for training on features computed once by a frozen backbone."""
        return F.normalize(self.net.head(features).float(), dim=1)


def create_embedding_model(model: str, dim: int, **options: Any) -> EmbeddingNet:
    return EmbeddingNet(create_model(model, dim, **options))


def fingerprint(model: nn.Module) -> str:
    """sha256 (first 16 hex digits) of every parameter and buffer, names included: two models give
    the same fingerprint only if they compute the same embeddings."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]
