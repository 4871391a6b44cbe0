"""A finished embedding run loaded back: network, normalisation, input size, config, fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from cnnlab.data.normalize import Normalization
from cnnlab.data.split import IdentitySplit
from cnnlab.embed.config import EmbedConfig
from cnnlab.embed.data import SPLITS, load_faces
from cnnlab.embed.encoders import NetEncoder
from cnnlab.errors import UserError
from cnnlab.models.embedding import EmbeddingNet, create_embedding_model, fingerprint
from cnnlab.runs.checkpoint import load_checkpoint


@dataclass
class LoadedEmbedder:
    run_dir: Path
    model: EmbeddingNet
    config: EmbedConfig
    encoder: NetEncoder
    image_size: int
    fingerprint: str
    identities: dict[str, list[str]]  # split name -> identity names, as trained

    def split(self) -> IdentitySplit:
        """The run's train / dev / test identities again (the same data, split with the same seed)."""
        split = load_faces(self.config, self.image_size)
        for name in SPLITS:
            if getattr(split, name).classes != self.identities[name]:
                raise UserError(f"the {name} identities of {self.run_dir} are not those its data gives now: "
                                "was the data folder changed? Evaluate on the data it was trained with")
        return split


def is_embedding_run(run_dir: str | Path, which: str = "best") -> bool:
    """Whether ``run_dir`` was written by `cnnlab embed train` (its checkpoint says so)."""
    return load_checkpoint(run_dir, which).get("kind") == "embedding"


def load_embedder(run_dir: str | Path, which: str = "best", device: torch.device | str = "cpu") -> LoadedEmbedder:
    ckpt = load_checkpoint(run_dir, which)
    if ckpt.get("kind") != "embedding":
        raise UserError(f"'{run_dir}' is not an embedding run (it was made by `cnnlab train`): pass a folder "
                        "`cnnlab embed train` wrote")
    cfg = EmbedConfig.from_dict(ckpt["config"], where=f"{run_dir} checkpoint")
    model = create_embedding_model(cfg.model, cfg.dim, **cfg.model_options)
    model.load_state_dict(ckpt["model"])
    model.to(device).eval()
    encoder = NetEncoder(model, Normalization.from_dict(ckpt["normalization"]), torch.device(device), cfg.eval_batch_size)
    return LoadedEmbedder(Path(run_dir), model, cfg, encoder, int(ckpt["image_size"]), fingerprint(model),
                          {k: list(v) for k, v in ckpt["identities"].items()})
