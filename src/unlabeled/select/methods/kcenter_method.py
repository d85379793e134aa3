"""``kcenter``: greedy farthest-point traversal, a 2-approximation of the k-center problem
(Gonzalez 1985; as a coreset for deep learning: Sener & Savarese 2018, "Active Learning for
Convolutional Neural Networks: A Core-Set Approach")."""

from __future__ import annotations

from typing import Any

import numpy as np

from unlabeled._console import progress
from unlabeled.select import algorithms
from unlabeled.select.index import normalized
from unlabeled.select.methods.base import MethodInput, SelectionMethod


def _to_distance(sims: np.ndarray) -> np.ndarray:
    """Cosine similarities of unit vectors to their Euclidean distances, in place:
    |a - b| = sqrt(2 - 2 cos)."""
    sims *= -2.0
    sims += 2.0
    np.maximum(sims, 0.0, out=sims)
    return np.sqrt(sims, out=sims)


def kcenter(x: np.ndarray, budget: int, seed: int) -> np.ndarray:
    """Greedy k-center on unit-normalised embeddings: start from a random sample, then
    repeatedly add the sample farthest from everything chosen.

    Exactly Gonzalez's traversal, made cheap with the triangle inequality (as Elkan 2003 does
    for k-means): with ``r`` a sample's distance to its nearest chosen centre ``a``, a new
    centre ``c`` can only come closer if ``|a - c| < 2r``. Once the first picks have shrunk the
    radii, a pick reads two numbers per sample instead of its whole embedding and computes
    distances only for the few near the new centre. Distances are Euclidean between unit
    vectors, a monotone function of cosine. A pool too large for memory is read in chunks.
    All in numpy: its BLAS's matrix-vector product ran 3x faster than ``torch.mv`` on a
    1M x 128 pool here (22 against 71 ms), and mixing the two thread pools slowed both."""
    n, d = x.shape
    step = algorithms.CHUNK
    xn = normalized(x) if n * d * 4 <= algorithms.IN_MEMORY_BYTES else None

    def rows(pos: np.ndarray) -> np.ndarray:  # unit rows at sorted positions ``pos``
        return xn[pos] if xn is not None else normalized(x[pos])

    def distances(pos: np.ndarray | None, center: np.ndarray) -> np.ndarray:
        if pos is not None:
            return _to_distance(rows(pos) @ center)
        if xn is not None:
            return _to_distance(xn @ center)
        return _to_distance(np.concatenate([normalized(x[s : s + step]) @ center for s in range(0, n, step)]))

    first = int(np.random.default_rng(seed).integers(n))
    centers = np.empty((budget, d), dtype=np.float32)
    centers[0] = rows(np.array([first]))[0]
    near = distances(None, centers[0])  # distance to the nearest chosen centre
    owner = np.zeros(n, dtype=np.int32)  # which centre that is
    chosen = [first]
    near[first] = 0.0
    with progress() as bar:
        task = bar.add_task("k-center", total=budget)
        bar.advance(task)
        for j in range(1, budget):
            c = int(near.argmax())
            if near[c] <= 0:  # fewer distinct points than the budget: the rest are repeats
                c = int(np.flatnonzero(~np.isin(np.arange(n), chosen))[0])
            centers[j] = rows(np.array([c]))[0]
            gap = _to_distance(centers[:j] @ centers[j])
            # a sample may come closer only if its centre is within twice its radius of the
            # new one (a small margin keeps float rounding on the safe side)
            may = gap.take(owner) < 2.0 * near + 1e-5
            pos = np.flatnonzero(may) if np.count_nonzero(may) <= n // 4 else None
            dist = distances(pos, centers[j])
            if pos is None:
                closer = dist < near
                np.minimum(near, dist, out=near)
                owner[closer] = j
            elif len(pos):
                closer = dist < near[pos]
                near[pos[closer]], owner[pos[closer]] = dist[closer], j
            near[c], owner[c] = 0.0, j
            chosen.append(c)
            bar.advance(task)
    return np.sort(np.asarray(chosen))


class KCenter(SelectionMethod):
    """A coreset of ``budget`` candidates covering the pool's embeddings."""

    name = "kcenter"

    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        return kcenter(data.vectors, data.budget, data.seed), {}
