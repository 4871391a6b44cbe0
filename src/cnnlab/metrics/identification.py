"""Identification (1:N) metrics: closed-set CMC / rank-k and open-set DIR at a FPIR.

Inputs are a probe x identity *distance* matrix (each entry the distance from a probe to the
nearest enrolled image of that identity) and each probe's true identity column. A probe's rank is
1 + the number of identities strictly nearer than its own (ties count in the probe's favour).
"""

from __future__ import annotations

import numpy as np


def ranks(distances: np.ndarray, true_column: np.ndarray) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    own = d[np.arange(len(d)), true_column]
    return 1 + np.sum(d < own[:, None], axis=1)


def cmc(distances: np.ndarray, true_column: np.ndarray, max_rank: int | None = None) -> np.ndarray:
    """Cumulative match characteristic: ``cmc[k - 1]`` = fraction of probes with rank <= k."""
    r = ranks(distances, true_column)
    max_rank = max_rank or np.shape(distances)[1]
    return np.array([np.mean(r <= k) for k in range(1, max_rank + 1)])


def dir_at_fpir(mated: np.ndarray, mated_rank: np.ndarray, non_mated: np.ndarray, fpir: float) -> tuple[float, float]:
    """Open-set detection and identification rate at a false positive identification rate.

    ``mated``: each mated probe's distance to its own identity, ``mated_rank`` its rank;
    ``non_mated``: each non-mated probe's distance to its nearest enrolled identity. The threshold is
    the most lenient one that accepts at most ``floor(fpir * len(non_mated))`` non-mated probes
    (accept ``distance < threshold``); DIR is the fraction of mated probes at rank 1 and accepted.
    Returns (DIR, threshold).
    """
    ordered = np.sort(np.asarray(non_mated, dtype=np.float64))
    allowed = int(np.floor(fpir * len(ordered) + 1e-9))
    threshold = float(ordered[allowed]) if allowed < len(ordered) else float("inf")
    hit = (np.asarray(mated_rank) == 1) & (np.asarray(mated) < threshold)
    return float(np.mean(hit)), threshold
