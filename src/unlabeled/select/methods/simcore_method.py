"""``simcore``: Kim et al. 2023, "Coreset Sampling from Open-Set for Fine-Grained
Self-Supervised Learning" (CVPR): k-means on the target's embeddings, then every centroid
takes its nearest not-yet-taken pool sample, round after round, until the budget (or until
the similarity falls below a stopping threshold)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.select.algorithms import kmeans
from unlabeled.select.index import EmbeddingIndex
from unlabeled.select.methods.base import MethodInput, SelectionMethod


def simcore(
    index: EmbeddingIndex,
    target: np.ndarray,
    budget: int,
    centroids: int,
    seed: int,
    stop_similarity: float | None = None,
) -> tuple[np.ndarray, dict]:
    """SimCore's sampling: rounds over the target's k-means centroids, each taking its nearest
    unused pool sample."""
    cents = kmeans(target, centroids, seed)
    k = min(index.size, max(8, 2 * math.ceil(budget / len(cents))))
    while True:
        order = _rounds(index.search(cents, k), budget, stop_similarity, k < index.size)
        if order is not None:
            chosen, early = order
            return np.sort(np.asarray(chosen, dtype=np.int64)), {"centroids": len(cents), "stopped_early": early}
        k = min(index.size, 2 * k)  # a centroid ran out of neighbours: look further, from the start


def _rounds(
    found: tuple[np.ndarray, np.ndarray], budget: int, stop_similarity: float | None, more: bool
) -> tuple[list[int], bool] | None:
    """The samples the centroids take, round after round, each its nearest not yet taken (a
    cursor per centroid skips those another took; a centroid that met a taken sample took
    nothing that round, and a whole target cluster could go unrepresented); and whether they
    stopped before the budget. None where a centroid's ``k`` neighbours ran out and ``more``
    can be searched."""
    sims, idx = found
    k = idx.shape[1]
    ptr, taken, order = np.zeros(len(idx), dtype=np.int64), set(), []
    active = np.ones(len(idx), dtype=bool)
    while active.any():
        for c in np.flatnonzero(active):
            while ptr[c] < k and int(idx[c, ptr[c]]) in taken:
                ptr[c] += 1
            # -1: an inverted-list index found fewer than k; more neighbours may lie further out
            if ptr[c] == k or (more and int(idx[c, ptr[c]]) < 0):
                if more:
                    return None
                active[c] = False  # every pool sample seen
                continue
            p, s = int(idx[c, ptr[c]]), float(sims[c, ptr[c]])
            if p < 0 or (stop_similarity is not None and s < stop_similarity):
                active[c] = False
                continue
            taken.add(p)
            order.append(p)
            ptr[c] += 1
            if len(order) == budget:
                return order, False
    return order, True


class SimCore(SelectionMethod):
    """``budget`` candidates nearest the target's k-means centroids; ``centroids`` defaults
    to SimCore's square root of the target size, capped at ``max_centroids``."""

    name = "simcore"
    takes = frozenset({"centroids", "stop_similarity"})
    needs_target = True
    clusters_target = True
    max_centroids = 100

    def default_centroids(self, target_size: int) -> int:
        return min(self.max_centroids, max(1, round(np.sqrt(target_size))))

    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        k = data.centroids or self.default_centroids(len(data.target))
        if k > len(data.target):  # k-means would quietly make fewer
            raise UnlabeledError(f"--centroids {k} is more than the target's {len(data.target)} samples")
        index = EmbeddingIndex(data.vectors, seed=data.seed, queries=k)
        chosen, extra = simcore(index, data.target, data.budget, k, data.seed, data.stop_similarity)
        extra["index"] = index.kind
        return chosen, extra
