"""Identification search: exact (chunked matrix products) against faiss IVF (approximate).

Galleries of 10k, 100k and 1M random unit vectors in 128 dimensions; each query is a gallery row plus
noise (so its person is known), 200 queries. For each size: queries/s one query at a time and in one
batch of 200, milliseconds per single query, recall@1 (the true row found first; for faiss also
agreement with the exact answer), build time and memory (gallery bytes; the faiss index's serialized
size). Target: exact top-1 of 1M vectors under 100 ms per query on 2 cores.

    python benchmarks/face_search.py [--sizes 10000,100000,1000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.nn import functional as F

from cnnlab.embed.gallery import IvfIndex, search_exact

DIM = 128


def unit_vectors(n: int, g: torch.Generator, chunk: int = 200_000) -> torch.Tensor:
    return torch.cat([F.normalize(torch.randn(min(chunk, n - i), DIM, generator=g), dim=1)
                      for i in range(0, n, chunk)])


def timed(fn, repeats: int = 1):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return out, (time.perf_counter() - t0) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--noise", type=float, default=0.05, help="std of the noise added to each query's source row")
    args = p.parse_args()
    g = torch.Generator().manual_seed(0)
    print(f"{'gallery':>9} {'method':<14}{'build s':>9}{'ms/query':>10}{'q/s single':>12}{'q/s batch':>11}"
          f"{'recall@1':>10}{'= exact':>9}{'memory MB':>11}")
    for n in (int(s) for s in args.sizes.split(",")):
        gallery = unit_vectors(n, g)
        truth = torch.randint(n, (args.queries,), generator=g)
        queries = F.normalize(gallery[truth] + args.noise * torch.randn(args.queries, DIM, generator=g), dim=1)
        single_n = min(args.queries, 50)
        (_, exact_idx), batch_s = timed(lambda: search_exact(gallery, queries, k=1))
        _, single_s = timed(lambda: [search_exact(gallery, queries[i : i + 1], k=1) for i in range(single_n)])
        recall = (exact_idx[:, 0] == truth).float().mean().item()
        print(f"{n:>9} {'exact':<14}{0:>9.1f}{single_s / single_n * 1e3:>10.2f}{single_n / single_s:>12.0f}"
              f"{args.queries / batch_s:>11.0f}{recall:>10.3f}{1:>9.3f}{gallery.numel() * 4 / 2**20:>11.0f}", flush=True)
        index, build_s = timed(lambda: IvfIndex(gallery))
        (_, ivf_idx), batch_s = timed(lambda: index.search(queries, k=1))
        _, single_s = timed(lambda: [index.search(queries[i : i + 1], k=1) for i in range(single_n)])
        import faiss

        size_mb = len(faiss.serialize_index(index.index)) / 2**20
        recall = (ivf_idx[:, 0] == truth).float().mean().item()
        agree = (ivf_idx[:, 0] == exact_idx[:, 0]).float().mean().item()
        label = f"faiss IVF{index.index.nlist}"
        print(f"{n:>9} {label:<14}{build_s:>9.1f}{single_s / single_n * 1e3:>10.2f}{single_n / single_s:>12.0f}"
              f"{args.queries / batch_s:>11.0f}{recall:>10.3f}{agree:>9.3f}{size_mb:>11.0f}", flush=True)
        del index, gallery


if __name__ == "__main__":
    main()
