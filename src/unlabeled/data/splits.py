"""Label-fraction subsets and validation splits, stratified and seeded.

All randomness goes through ``numpy.random.default_rng(seed)``, so a seed gives the same
subset on every machine.
"""

from __future__ import annotations

import warnings

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


def stratified_split(labels: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
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


def shots_subset(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Positions of ``shots`` samples per class (all of a class's samples when it has
    fewer), sorted: the k-shot protocol."""
    if shots < 1:
        raise ValueError(f"shots must be at least 1, got {shots}")
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(members, size=min(shots, len(members)), replace=False)
        for members in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    return np.sort(np.concatenate(picked))


def random_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Positions of a random ``fraction`` of ``n`` samples (at least two), sorted: label
    fractions for regression targets, which have no classes to stratify by."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction >= 1:
        return np.arange(n)
    k = min(n, max(2, int(round(fraction * n))))
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


# the share of the labelled samples that a collection without a split column holds out as its
# test split: bench's carve-out (stratified, seed 0), which finetune and selftrain leave out too
TEST_FRACTION = 0.2


def carved_test(labels: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """The positions among ``labelled`` that ``bench`` tests on where a collection has no
    split column: a stratified :data:`TEST_FRACTION` of them, seed 0 (``bench``'s default
    split). A classifier trained on the rest can be benched on them."""
    return labelled[holdout_split(len(labelled), TEST_FRACTION, 0, labels[labelled])[1]]


def holdout_split(
    n: int, holdout: float, seed: int, labels: np.ndarray | None = None, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..n-1`` into (fit, holdout): stratified by ``labels`` when given,
    and never putting one group (a patient, a speaker) on both sides when ``groups`` is given
    (scikit-learn's StratifiedGroupKFold / GroupShuffleSplit, first fold). Falls back to a
    plain random split for regression targets without groups."""
    if groups is None:
        if labels is not None:
            return stratified_split(labels, holdout, seed)
        perm = np.random.default_rng(seed).permutation(n)
        k = 0 if n < 2 else min(n - 1, max(1, int(round(holdout * n))))
        return np.sort(perm[k:]), np.sort(perm[:k])
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    groups = np.asarray(groups).astype(str)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        return np.arange(n), np.arange(0)
    folds = min(n_groups, max(2, int(round(1 / holdout))))
    if labels is not None:
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        with warnings.catch_warnings():  # with few labels, classes smaller than the folds are normal
            warnings.simplefilter("ignore", UserWarning)
            try:
                fit, held = next(splitter.split(np.zeros(n), labels, groups))
            except ValueError:  # every class smaller than the folds (a few labels): by group alone
                return holdout_split(n, holdout, seed, None, groups)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=1 / folds, random_state=seed)
        fit, held = next(splitter.split(np.zeros(n), groups=groups))
    return np.sort(fit), np.sort(held)


def tally(names: np.ndarray | list) -> str:
    """How a note names the splits it is about, with their sizes: "val (20), extra (3)"."""
    kinds, counts = np.unique([str(v) for v in names], return_counts=True)
    return ", ".join(f"{n} ({c})" for n, c in zip(kinds, counts, strict=True))
