"""Gallery search: exact chunked search against a brute-force sort, per-person nearest, faiss IVF."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from cnnlab.embed.gallery import Gallery, IvfIndex, load_gallery, nearest_people, save_gallery, search_exact
from cnnlab.errors import UserError


def _unit(n: int, seed: int, dim: int = 16) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_chunked_exact_search_equals_sorting_all_distances():
    gallery, queries = _unit(1000, 0), _unit(7, 1)
    dist, idx = search_exact(gallery, queries, k=5, chunk_rows=64)  # 16 chunks, a short last one
    full = torch.cdist(queries, gallery)
    expected_dist, expected_idx = full.sort(dim=1)
    assert torch.equal(idx, expected_idx[:, :5])
    assert torch.allclose(dist, expected_dist[:, :5], atol=1e-3)


def test_nearest_people_takes_each_persons_nearest_image():
    g = Gallery("f")
    e = torch.eye(4)
    g.add(e[[0, 1, 2]], ["ann", "bob", "ann"], ["a1", "b1", "a2"])
    query = F.normalize(torch.tensor([[0.0, 0.6, 0.8, 0.0]]), dim=1)
    (first, second), = nearest_people(g, query, k=5)
    assert first[0] == "ann" and first[1] == pytest.approx((2 - 2 * 0.8) ** 0.5, abs=1e-5)  # via a2
    assert second[0] == "bob" and second[1] == pytest.approx((2 - 2 * 0.6) ** 0.5, abs=1e-5)


def test_gallery_file_round_trip_and_damaged_file(tmp_path):
    g = Gallery("abc")
    g.add(_unit(3, 2), ["x", "y", "x"], ["1.png", "2.png", "3.png"])
    path = save_gallery(tmp_path / "g.gallery", g)
    back = load_gallery(path)
    assert back.fingerprint == "abc" and back.names == g.names and torch.equal(back.embeddings, g.embeddings)
    (tmp_path / "bad.gallery").write_text("not a gallery")
    with pytest.raises(UserError, match="not a readable cnnlab gallery"):
        load_gallery(tmp_path / "bad.gallery")
    with pytest.raises(UserError, match="was made by another model"):
        back.check_model("def", "g.gallery")


def test_faiss_ivf_finds_the_source_of_noisy_queries():
    pytest.importorskip("faiss", reason="faiss-cpu is an optional extra (pip install faiss-cpu)")
    gallery = _unit(4000, 3, dim=32)
    truth = torch.arange(0, 4000, 40)
    queries = F.normalize(gallery[truth] + 0.02 * torch.randn(len(truth), 32, generator=torch.Generator().manual_seed(4)), dim=1)
    index = IvfIndex(gallery, lists=16, probes=16)  # every cell probed: as exact as a flat search
    dist, idx = index.search(queries, k=1)
    assert torch.equal(idx[:, 0], truth)
    assert torch.allclose(dist, search_exact(gallery, queries, k=1)[0], atol=1e-3)
