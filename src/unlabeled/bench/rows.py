"""Reading bench result rows for display: a row's label setting and metric direction, the
settings of a task from fewest labels to most, and the small checks the report repeats."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from unlabeled.bench.metrics import higher_is_better


def finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def unique(values: Iterable[Any]) -> list[Any]:
    """``values`` without repeats, in first-seen order."""
    return list(dict.fromkeys(values))


def row_higher_is_better(row: dict[str, Any]) -> bool:
    """Whether a larger primary metric is better for this row: as the bench recorded it, else
    as :func:`unlabeled.bench.metrics.higher_is_better` says of its metric."""
    return bool(row.get("higher_is_better", higher_is_better(str(row.get("metric", "")))))


def setting_name(row: dict[str, Any]) -> str:
    """The row's label setting as shown to the user: ``"10%"`` or ``"5-shot"``."""
    if row.get("setting"):
        return str(row["setting"])
    if row.get("fraction") is not None:
        return f"{row['fraction'] * 100:g}%"
    return f"{row.get('shots')}-shot"


def order_settings(rows: list[dict[str, Any]]) -> list[str]:
    """The settings of ``rows`` from fewest labels to most (k-shot and fractions interleaved by
    the median number of labels they gave)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(setting_name(r), []).append(r)

    def key(name: str) -> tuple[float, int, float]:
        group = by[name]
        n = [r["n_labels"] for r in group if finite(r.get("n_labels"))]
        frac = group[0].get("fraction")
        value = float(frac) if frac is not None else float(group[0].get("shots") or 0)
        return (float(np.median(n)) if n else math.inf, int(frac is not None), value)

    return sorted(by, key=key)
