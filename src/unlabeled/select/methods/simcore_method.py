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
    taken: set[int] = set()
    order: list[int] = []
    active = np.ones(len(cents), dtype=bool)
    while True:
        sims, idx = index.search(cents, k)
        for r in range(k):
            for c in np.flatnonzero(active):
                p, s = int(idx[c, r]), float(sims[c, r])
                if p < 0 or (stop_similarity is not None and s < stop_similarity):
                    active[c] = False
                    continue
                if p not in taken:
                    taken.add(p)
                    order.append(p)
                    if len(order) == budget:
                        return np.sort(np.asarray(order)), {"centroids": len(cents), "stopped_early": False}
            if not active.any():
                return np.sort(np.asarray(order, dtype=np.int64)), {"centroids": len(cents), "stopped_early": True}
        if k >= index.size:
            return np.sort(np.asarray(order, dtype=np.int64)), {"centroids": len(cents), "stopped_early": True}
        k = min(index.size, 2 * k)  # neighbours overlapped between centroids: look further
        taken.clear()
        order.clear()
        active[:] = True


class SimCore(SelectionMethod):
    """``budget`` candidates nearest the target's k-means centroids; ``centroids`` defaults
    to SimCore's square root of the target size, capped at ``max_centroids``."""

    name = "simcore"
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
