"""Galleries: enrolled embeddings with the names of their people and the fingerprint of the model
that made them, and search in them.

A gallery file is plain data (``torch.load(path, weights_only=True)``), written atomically. Its
embeddings only mean something to the model that computed them, so every use checks the model's
fingerprint and refuses another model's gallery. Search is exact by default: chunked matrix products
of unit vectors (distance² = 2 - 2 cos), so memory stays bounded for any gallery size. With faiss-cpu
installed, ``IvfIndex`` gives an approximate inverted-file index for large galleries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from cnnlab import atomic
from cnnlab.errors import UserError

FORMAT = 1
CHUNK_ROWS = 131_072


@dataclass
class Gallery:
    fingerprint: str  # of the model that computed the embeddings
    embeddings: torch.Tensor = field(default_factory=lambda: torch.zeros(0, 0))  # float32, N x D, unit rows
    names: list[str] = field(default_factory=list)  # the person of each row
    files: list[str] = field(default_factory=list)  # the image each row came from

    def people(self) -> list[str]:
        return sorted(set(self.names))

    def add(self, embeddings: torch.Tensor, names: list[str], files: list[str]) -> None:
        if len(self.names) == 0:
            self.embeddings = embeddings.float().clone()
        else:
            self.embeddings = torch.cat([self.embeddings, embeddings.float()])
        self.names += names
        self.files += files

    def check_model(self, fingerprint: str, where: str) -> None:
        if fingerprint != self.fingerprint:
            raise UserError(f"gallery '{where}' was made by another model (fingerprint {self.fingerprint}, this "
                            f"run's is {fingerprint}): use the run that enrolled it, or enroll into a new gallery")


def save_gallery(path: str | Path, gallery: Gallery) -> Path:
    return atomic.save_torch(path, {
        "format": FORMAT, "fingerprint": gallery.fingerprint, "embeddings": gallery.embeddings,
        "names": gallery.names, "files": gallery.files,
    })


def load_gallery(path: str | Path) -> Gallery:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"gallery '{path}' does not exist: create it with `cnnlab embed enroll RUN {path} --name NAME IMAGE...`")
    try:
        blob = torch.load(p, map_location="cpu", weights_only=True)
        return Gallery(str(blob["fingerprint"]), blob["embeddings"], list(blob["names"]), list(blob["files"]))
    except Exception as e:  # noqa: BLE001 - a damaged or foreign file is one line, not a traceback
        raise UserError(f"'{path}' is not a readable cnnlab gallery ({type(e).__name__}): pass a file made by "
                        "`cnnlab embed enroll`") from None


def to_distance(similarity: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between unit vectors from their dot product."""
    return (2 - 2 * similarity).clamp_min(0).sqrt()


def search_exact(gallery: torch.Tensor, queries: torch.Tensor, k: int = 1,
                 chunk_rows: int = CHUNK_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
    """(distances, row indices) of the ``k`` nearest gallery rows to each query, nearest first;
    the gallery is scanned in chunks of ``chunk_rows`` rows, keeping a running top-k."""
    k = min(k, len(gallery))
    best_sim = torch.full((len(queries), k), -float("inf"))
    best_idx = torch.zeros((len(queries), k), dtype=torch.long)
    for start in range(0, len(gallery), chunk_rows):
        sim = queries @ gallery[start : start + chunk_rows].T
        top_sim, top_idx = sim.topk(min(k, sim.shape[1]), dim=1)
        merged_sim = torch.cat([best_sim, top_sim], dim=1)
        merged_idx = torch.cat([best_idx, top_idx + start], dim=1)
        best_sim, order = merged_sim.topk(k, dim=1)
        best_idx = merged_idx.gather(1, order)
    return to_distance(best_sim), best_idx


def nearest_people(gallery: Gallery, queries: torch.Tensor, k: int) -> list[list[tuple[str, float]]]:
    """For each query, the ``k`` nearest people (distance to each person's nearest enrolled image)."""
    people = gallery.people()
    column = {name: i for i, name in enumerate(people)}
    owner = torch.tensor([column[n] for n in gallery.names])
    best = torch.full((len(queries), len(people)), -float("inf"))
    for start in range(0, len(gallery.names), CHUNK_ROWS):
        sim = queries @ gallery.embeddings[start : start + CHUNK_ROWS].T
        best.scatter_reduce_(1, owner[start : start + CHUNK_ROWS].expand(len(queries), -1), sim, reduce="amax")
    sims, cols = best.topk(min(k, len(people)), dim=1)
    dists = to_distance(sims)
    return [[(people[c], float(d)) for c, d in zip(cs.tolist(), ds)] for cs, ds in zip(cols, dists)]


class IvfIndex:
    """Approximate search with faiss (an optional dependency): an inverted-file index of unit vectors
    by inner product, ``lists`` k-means cells, ``probes`` cells searched per query."""

    def __init__(self, gallery: torch.Tensor, lists: int = 1024, probes: int = 16, seed: int = 0) -> None:
        try:
            import faiss
        except ImportError:
            raise UserError("approximate search needs faiss-cpu: pip install faiss-cpu (or use the exact search)") from None
        x = gallery.float().contiguous().numpy()
        lists = max(1, min(lists, len(x) // 39))  # faiss wants about 39 training points per cell
        quantizer = faiss.IndexFlatIP(x.shape[1])
        self.index = faiss.IndexIVFFlat(quantizer, x.shape[1], lists, faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = seed
        self.index.train(x)
        self.index.add(x)
        self.index.nprobe = probes
        self._quantizer = quantizer  # the index refers to it; keep it alive

    def search(self, queries: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        sims, idx = self.index.search(queries.float().contiguous().numpy(), k)
        return to_distance(torch.from_numpy(sims)), torch.from_numpy(idx).long()
