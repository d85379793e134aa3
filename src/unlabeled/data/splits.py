"""Label-fraction subsets and validation splits, stratified and seeded.

All randomness goes through ``numpy.random.default_rng(seed)``, so a seed gives the same
subset on every machine.
"""

from __future__ import annotations

import numpy as np


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Positions (into ``labels``) of a stratified ``fraction`` of the samples, at least one
    per class, sorted. ``fraction`` 1 returns everything."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction >= 1:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(members))))
        picked.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def stratified_split(
    labels: np.ndarray, holdout: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions into (fit, holdout), stratified: each class with at least two members
    puts about ``holdout`` of them, and at least one, on the holdout side."""
    rng = np.random.default_rng(seed)
    fit, held = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        k = 0 if len(members) < 2 else min(len(members) - 1, max(1, int(round(holdout * len(members)))))
        held.append(members[:k])
        fit.append(members[k:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(held))
