"""Rehydration (FineWeb2, Penedo et al. 2025): deduplication keeps one document of each
near-duplicate cluster, and the cluster's size says how often that text occurred. FineWeb2
found that documents with a few duplicates are better than unique ones, and those with very many
worse, and read it from the quality filters' removal rate per cluster size: it upsamples the
kept documents of the sizes the filters remove less often than unique documents.

Here each kept document gets a sampling weight: ``min(cluster size, cap)`` where its size group
(1, 2, 3-4, 5-100, 101-1000, more) had a quality-filter removal rate at or below the unique
documents' (each, the unique ones too, measured on at least ``MIN_GROUP`` documents), else 1; a removed document
weighs 0. Pretraining samples documents in proportion to their weight.
"""

from __future__ import annotations

import numpy as np

GROUPS = ((1, 1), (2, 2), (3, 4), (5, 100), (101, 1000), (1001, None))
MIN_GROUP = 10
CAP = 5  # our choice; FineWeb2 says it did not explore upsampling weights extensively


def size_group(size: int) -> str:
    """The cluster-size group of ``size``: ``"1"``, ``"2"``, ``"3-4"``, ..., ``"1001+"``."""
    if size < 1:  # the last group is open-ended: checked first, or 0 and -3 were "1001+"
        raise ValueError(f"cluster size must be at least 1, got {size}")
    for low, high in GROUPS:
        if high is None:
            return f"{low}+"
        if low <= size <= high:
            return str(low) if low == high else f"{low}-{high}"
    raise ValueError(f"cluster size must be at least 1, got {size}")


def removal_rates(sizes: np.ndarray, removed: np.ndarray) -> dict[str, tuple[int, float]]:
    """Per size group: (documents, fraction the quality filters removed)."""
    groups = np.array([size_group(int(s)) for s in sizes], dtype=object)
    out = {}
    for name in dict.fromkeys(size_group(low) for low, _ in GROUPS):
        m = groups == name
        if m.any():
            out[name] = (int(m.sum()), round(float(removed[m].mean()), 4))
    return out


def rehydration_weights(sizes: np.ndarray, removed: np.ndarray, cap: int = CAP) -> tuple[np.ndarray, dict]:
    """Weights of the documents that reached the quality filters (``sizes``: their clusters'
    sizes; ``removed``: whether the filters removed them), and the rates they came from."""
    sizes, removed = np.asarray(sizes, dtype=np.int64), np.asarray(removed, dtype=bool)
    rates = removal_rates(sizes, removed)
    # the unique documents' rate is the baseline, measured on MIN_GROUP of them as every group's
    # is: one unique document removed made every group of 10 look better than unique ones
    baseline, unique = rates.get("1", (0, 0.0))
    measured = baseline >= MIN_GROUP
    upsampled = {g for g, (n, r) in rates.items() if measured and g != "1" and n >= MIN_GROUP and r <= unique}
    groups = np.array([size_group(int(s)) for s in sizes], dtype=object)
    up = np.isin(groups, list(upsampled)) if upsampled else np.zeros(len(sizes), dtype=bool)
    weights = np.where(up, np.minimum(sizes, cap), 1).astype(np.float64)
    weights[removed] = 0.0
    out = {"removal_rate_by_cluster_size": rates, "upsampled_groups": sorted(upsampled)}
    if not measured:
        out["note"] = (
            f"fewer than {MIN_GROUP} unique documents reached the quality filters: no baseline, none upsampled"
        )
    return weights, out
