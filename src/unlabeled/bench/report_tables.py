"""The bench report's tables as plain data for its template: the unified score of every
model, one task's results (best cell of each column marked) and every metric it recorded.
Numbers are formatted here; the template only lays them out (and escapes them)."""

from __future__ import annotations

import json
from typing import Any

from unlabeled.bench.baselines import is_baseline
from unlabeled.bench.result import cells_column, ranked_unified
from unlabeled.bench.rows import finite, order_settings, row_higher_is_better, setting_name, unique


def num(x: Any, ref: float | None = None) -> str:
    """A metric value with about four significant digits; ``ref`` fixes the decimals (so that
    a std is printed to the same precision as its mean)."""
    if not finite(x):
        return "–"
    a = abs(ref if finite(ref) else x)
    decimals = 4 if a < 10 else 2 if a < 100 else 1 if a < 1000 else 0
    return f"{x:.{decimals}f}"


def mean_std(mean: Any, std: Any, seeds: int | None = None) -> str:
    """``mean ± std``, or the mean alone where one seed was scored (its spread is unknown, not 0)."""
    return num(mean) if seeds == 1 else f"{num(mean)} ± {num(std, mean)}"


def unified_table(
    unified: dict[str, float], baselines: set[str], cells: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """The unified score of every model, best first (a model scored in fewer cells after those
    scored in more, a missing score last): rank, model, class, score, and ``cells`` ("9 of 27")
    where the models' cell counts differ."""
    counts = cells_column(cells or {})
    return [
        {
            "rank": i,
            "model": model,
            "cls": "baseline" if model in baselines else "model",
            "score": f"{score:.3f}" if finite(score) else "–",
            "cells": counts.get(model),
        }
        for i, (model, score) in enumerate(ranked_unified(unified, cells or {}), 1)
    ]


def _row_order(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(model, probe) pairs grouped by probe, pretrained models before baselines."""
    probes = unique(r["probe"] for r in rows)
    pairs = unique((r["model"], r["probe"], is_baseline(r)) for r in rows)
    return [(m, p) for probe in probes for base in (False, True) for m, p, b in pairs if p == probe and b == base]


def _cell_title(r: dict[str, Any]) -> str:
    parts = []
    if r.get("scores"):
        parts.append("per seed: " + ", ".join(num(s, r.get("mean")) for s in r["scores"]))
    if r.get("n_labels") is not None:
        parts.append(f"{r['n_labels']} labels")
    if r.get("params"):
        chosen = json.dumps(r["params"], default=str)
        parts.append("chosen: " + (chosen if len(chosen) <= 300 else chosen[:297] + "..."))
    return "; ".join(parts)


def _best_and_counts(rows: list[dict[str, Any]], s: str) -> tuple[set[tuple[str, str]], str]:
    """The (model, probe) pairs best in setting ``s`` (ties within rounding), and its label counts."""
    best: set[tuple[str, str]] = set()
    col = [r for r in rows if setting_name(r) == s and finite(r.get("mean"))]
    if col:
        pick = max if row_higher_is_better(col[0]) else min
        top = pick(r["mean"] for r in col)
        tol = 1e-12 * max(1.0, abs(top))
        best = {(r["model"], r["probe"]) for r in col if abs(r["mean"] - top) <= tol}
    n = sorted({r["n_labels"] for r in rows if setting_name(r) == s and finite(r.get("n_labels"))})
    counts = "" if not n else f"{n[0]} labels" if len(n) == 1 else f"{n[0]}–{n[-1]} labels"
    return best, counts


def results_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One task's table: rows = model × probe, columns = label settings (fewest labels first),
    cells mean ± std of the primary metric; the best cell of each column marked (lowest for a
    lower-is-better metric); baseline rows marked to be greyed."""
    settings = order_settings(rows)
    cell = {(r["model"], r["probe"], setting_name(r)): r for r in rows}
    best, head = {}, []
    for s in settings:
        best[s], counts = _best_and_counts(rows, s)
        head.append({"name": s, "counts": counts})
    body = []
    for model, probe in _row_order(rows):
        any_row = next(r for r in rows if r["model"] == model and r["probe"] == probe)
        cells = []
        for s in settings:
            r = cell.get((model, probe, s))
            cells.append(
                None
                if r is None
                else {
                    "text": mean_std(r.get("mean"), r.get("std"), len(r.get("scores") or ())),
                    "title": _cell_title(r),
                    "best": (model, probe) in best[s],
                }
            )
        body.append({"cls": "baseline" if is_baseline(any_row) else "model", "model": model, "probe": probe})
        body[-1]["cells"] = cells
    return {"head": head, "body": body}


def metrics_table(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Every metric recorded for one task (mean ± std), or None when only the primary one was."""
    names = unique(name for r in rows for name in (r.get("metrics") or {}))
    if not names or names == [rows[0].get("metric")]:
        return None
    settings = order_settings(rows)
    cell = {(r["model"], r["probe"], setting_name(r)): r for r in rows}
    body = []
    for model, probe in _row_order(rows):
        for s in settings:
            r = cell.get((model, probe, s))
            if r is None:
                continue
            values = [(r.get("metrics") or {}).get(n) for n in names]
            seeds = len(r.get("scores") or ())
            texts = ["–" if not m else mean_std(m.get("mean"), m.get("std"), seeds) for m in values]
            body.append(
                {"cls": "baseline" if is_baseline(r) else "model", "model": model, "probe": probe, "setting": s}
            )
            body[-1]["cells"] = texts
    return {"names": names, "body": body}
