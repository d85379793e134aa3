"""``random``: a uniform sample, the baseline every method must beat."""

from __future__ import annotations

from typing import Any

import numpy as np

from unlabeled.select.methods.base import MethodInput, SelectionMethod


def random_selection(n: int, budget: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, budget, replace=False))


class RandomSelection(SelectionMethod):
    """``budget`` candidates drawn uniformly without replacement; needs no embeddings."""

    name = "random"
    needs_embeddings = False

    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        return random_selection(data.size, data.budget, data.seed), {}
