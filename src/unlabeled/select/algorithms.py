"""What more than one selection method uses: spherical k-means (SimCore clusters the target
with it, SemDeDup the pool) and the sizes that decide when a pass over the pool's embeddings
holds them in memory and when it streams them in chunks.

Methods read ``CHUNK`` and ``IN_MEMORY_BYTES`` as attributes of this module when they run,
not as names imported once, so a test can shrink them to walk the chunked paths on a small pool.
"""

from __future__ import annotations

import numpy as np

from unlabeled.select.index import CHUNK, normalized

IN_MEMORY_BYTES = 2 << 30  # embeddings up to this size are normalised once and held in memory

__all__ = ["CHUNK", "IN_MEMORY_BYTES", "kmeans", "normalized"]


def kmeans(x: np.ndarray, k: int, seed: int, niter: int = 20) -> np.ndarray:
    """Spherical k-means centroids (faiss), unit length."""
    # imported here: faiss takes a while to load and only selection needs it, so `import
    # unlabeled` (every CLI command) does not pay for it
    import faiss

    k = max(1, min(k, len(x)))
    # min_points_per_centroid=1: a small target set is expected here (a few hundred samples for
    # 20 centroids), and faiss would otherwise print a warning to the terminal about it
    km = faiss.Kmeans(
        x.shape[1],
        k,
        niter=niter,
        seed=seed,
        spherical=True,
        verbose=False,
        max_points_per_centroid=512,
        min_points_per_centroid=1,
    )
    km.train(np.ascontiguousarray(normalized(x)))
    return normalized(km.centroids)
