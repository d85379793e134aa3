"""``dedup``: SemDeDup, Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale
through semantic deduplication": k-means on the pool; inside each cluster, of every pair
more similar than the threshold only one is kept (the one farther from the centroid).
Similarities are between embeddings centred on the pool mean. Exact copies (identical
embeddings) are removed first, whatever the threshold."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch

from unlabeled._console import progress
from unlabeled.select import algorithms
from unlabeled.select.algorithms import kmeans
from unlabeled.select.index import normalized
from unlabeled.select.methods.base import MethodInput, SelectionMethod


def exact_duplicates(x: np.ndarray) -> np.ndarray:
    """Which rows repeat an earlier row byte for byte. SemDeDup's centred cosine cannot see
    them where they are all alike (a pool of one sample's copies centres to zero vectors), so
    they are found by their bytes first."""
    seen: set[bytes] = set()  # a 16-byte digest a row: a pool too large for memory streams through
    dup = np.zeros(len(x), dtype=bool)
    for s in range(0, len(x), algorithms.CHUNK):
        chunk = np.ascontiguousarray(x[s : s + algorithms.CHUNK])
        for i, row in enumerate(chunk):
            key = hashlib.blake2b(row.tobytes(), digest_size=16).digest()
            dup[s + i] = key in seen
            seen.add(key)
    return dup


def semdedup(x: np.ndarray, threshold: float, clusters: int | None, seed: int) -> tuple[np.ndarray, dict]:
    """Positions kept by SemDeDup and what was removed: inside each k-means cluster, walk the
    members from farthest to nearest the centroid and drop any more similar than ``threshold``
    to one already walked."""
    n, step = len(x), algorithms.CHUNK
    # the threshold is absolute, so embeddings are centred on the pool mean first: features
    # after a ReLU are all positive, and uncentred they are all alike by cosine
    mean = np.zeros(x.shape[1], np.float64)
    for s in range(0, n, step):
        mean += np.asarray(x[s : s + step], dtype=np.float64).sum(0)
    mean = (mean / n).astype(np.float32)
    in_memory = n * x.shape[1] * 4 <= algorithms.IN_MEMORY_BYTES
    xn = normalized(np.asarray(x) - mean) if in_memory else None
    k = clusters or max(1, round(math.sqrt(n)))
    if xn is not None:
        cents = kmeans(xn, k, seed)
    else:  # a seeded random sample of 64 rows a centroid: the first rows are one source of a pool in import order
        sample = np.sort(np.random.default_rng(seed).choice(n, min(n, 64 * k), replace=False))
        cents = kmeans(normalized(np.asarray(x[sample]) - mean), k, seed)
    assign = np.empty(n, dtype=np.int64)
    near = np.empty(n, dtype=np.float32)
    for s in range(0, n, step):
        chunk = xn[s : s + step] if xn is not None else normalized(x[s : s + step] - mean)
        sims = chunk @ cents.T
        assign[s : s + len(chunk)] = sims.argmax(1)
        near[s : s + len(chunk)] = sims.max(1)
    keep = ~exact_duplicates(x)
    exact, pairs = int((~keep).sum()), 0
    with progress() as bar:
        task = bar.add_task("dedup", total=len(cents))
        for c in range(len(cents)):
            members = np.flatnonzero((assign == c) & keep)  # an exact copy is gone already
            if len(members) > 1:
                members = members[np.argsort(near[members], kind="stable")]  # farthest from the centroid first
                v = torch.from_numpy(xn[members] if xn is not None else normalized(x[members] - mean))
                dup, above = _walked_duplicates(v, threshold)
                pairs += above
                keep[members[dup]] = False
            bar.advance(task)
    return np.flatnonzero(keep), {
        "clusters": len(cents),
        "removed": int((~keep).sum()),
        "exact": exact,
        "pairs_above": pairs,
    }


BLOCK_VALUES = 1 << 25  # similarities held at once (128 MB of float32) while a cluster is walked


def _walked_duplicates(v: torch.Tensor, threshold: float) -> tuple[np.ndarray, int]:
    """Which rows of ``v`` (unit vectors, in walking order) are more similar than
    ``threshold`` to a row walked before them, and how many such pairs there are; a block of
    rows at a time against the rows before it (the whole m x m matrix, with its triangle's
    copy and masks, took 90 GB for a cluster of 100,000)."""
    m = len(v)
    rows = max(1, BLOCK_VALUES // m)
    dup, pairs = np.zeros(m, dtype=bool), 0
    for b0 in range(0, m, rows):
        b1 = min(m, b0 + rows)
        sim = v[b0:b1] @ v[:b1].T  # (block, b1): row r is member b0 + r
        above = (sim > threshold) & (torch.arange(b1)[None] < torch.arange(b0, b1)[:, None])  # walked before it
        dup[b0:b1] = above.any(1).numpy()
        pairs += int(above.sum())
    return dup, pairs


class SemDeDup(SelectionMethod):
    """Keeps what is left once near duplicates (cosine similarity above ``threshold``) are
    removed, so it takes a threshold instead of a budget; ``centroids`` defaults to the
    square root of the pool size."""

    name = "dedup"
    takes = frozenset({"centroids", "threshold"})
    needs_budget = False

    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        chosen, extra = semdedup(data.vectors, data.threshold, data.centroids, data.seed)
        extra["threshold"] = data.threshold
        return chosen, extra
