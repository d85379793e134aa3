"""The result of a bench: its rows (one per task, model, probe and label setting, mean ± std
over seeds), the settings it ran with, and the unified score of every model across tasks."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled.bench.baselines import RAW

Embeddings = dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]  # (task, model) -> (features, labels)


@dataclass
class BenchResult:
    """Rows of ``task, model, probe, setting, metric, mean, std`` (plus per-seed detail), the
    unified score per model, and test-split features for the report's embedding maps."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    json_path: Path | None = None
    report_path: Path | None = None
    embeddings: Embeddings = field(default_factory=dict, repr=False)
    unified: dict[str, float] = field(default_factory=dict)
    unified_cells: dict[str, int] = field(default_factory=dict)  # how many cells each unified score averages

    def __repr__(self) -> str:  # the rows, one line each, are table()'s
        tasks = list(dict.fromkeys(r["task"] for r in self.rows))
        models = list(dict.fromkeys(r["model"] for r in self.rows))
        return f"BenchResult(tasks={tasks}, models={models}, rows={len(self.rows)}, json_path={self.json_path})"

    def score(
        self,
        model: str,
        probe: str,
        fraction: float | None = None,
        *,
        shots: int | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """The row of ``model`` with ``probe`` at a label ``fraction`` (or ``shots``), on
        ``task`` (default: the first task)."""
        task = task or self.rows[0]["task"]
        for r in self.rows:
            if r["task"] != task or r["model"] != model or r["probe"] != probe:
                continue
            if shots is not None and r["shots"] == shots:
                return r
            if fraction is not None and r["fraction"] is not None and abs(r["fraction"] - fraction) < 1e-12:
                return r
        raise KeyError((task, model, probe, fraction, shots))

    def table(self, markdown: bool = False) -> str:
        """The results as tables, one per task, one line per model and probe: plain text, or
        Markdown (for BENCHMARKS.md and issue notes)."""
        out = []
        for task in dict.fromkeys(r["task"] for r in self.rows):
            out += _task_table([r for r in self.rows if r["task"] == task], task, markdown)
            out.append("")
        if self.unified:
            out.append("unified score (0 = raw features, 1 = best in each cell; mean over tasks, probes, settings)")
            ranked = ranked_unified(self.unified, self.unified_cells)
            cells = cells_column(self.unified_cells)
            if markdown:
                extra = (" cells |", "---|") if cells else ("", "")
                head = ["| model | unified score |" + extra[0], "|---|---|" + extra[1]]
                out += ["", *head] + [f"| {m} | {v:.3f} |" + (f" {cells[m]} |" if cells else "") for m, v in ranked]
            else:
                out += [f"  {m:<{22}} {v:.3f}" + (f"  ({cells[m]} cells)" if cells else "") for m, v in ranked]
        return "\n".join(out).rstrip()


# where a cell shows one score among cells of several seeds (see unlabeled.bench.jobs._cell_job)
ONE_FIT = "every seed draws the same labels, so one fit"


def _setting_order(r: dict[str, Any]) -> tuple[int, float]:
    return (0, r["shots"]) if r["shots"] is not None else (1, r["fraction"])


def _mean_std(row: dict[str, Any]) -> str:
    """A row's mean ± std, or its mean alone where one seed was scored (no spread to show)."""
    if len(row.get("scores") or ()) == 1:
        return f"{row['mean']:.4f}"
    return f"{row['mean']:.4f} ± {row['std']:.4f}"


def _task_table(rows: list[dict[str, Any]], task: str, markdown: bool) -> list[str]:
    labels = list(dict.fromkeys(r["setting"] for r in sorted(rows, key=_setting_order)))
    cell = {(r["model"], r["probe"], r["setting"]): r for r in rows}
    seeds = max(len(r.get("scores") or ()) for r in rows)
    spread = "one seed" if seeds == 1 else f"mean ± std over {seeds} seeds"
    if seeds > 1 and any(len(r.get("scores") or ()) == 1 for r in rows):
        spread += f"; a mean alone: {ONE_FIT}"
    title = f"{task} ({rows[0]['metric']}, {spread})"
    lines = []
    for model, probe in dict.fromkeys((r["model"], r["probe"]) for r in rows):
        vals = [cell.get((model, probe, lab)) for lab in labels]
        lines.append((model, probe, ["-" if v is None else _mean_std(v) for v in vals]))
    if markdown:
        out = [title, "", "| model | probe | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
        return out + [f"| {m} | {p} | " + " | ".join(texts) + " |" for m, p, texts in lines]
    width = max([24, *(len(r["model"]) + 2 for r in rows)])
    head = f"{'model':<{width}}{'probe':<10}" + "".join(f"{lab:>18}" for lab in labels)
    return [title, head, "-" * len(head)] + [
        f"{m:<{width}}{p:<10}" + "".join(f"{t:>18}" for t in texts) for m, p, texts in lines
    ]


def jsonable(v: Any) -> Any:
    """``v`` with numpy scalars (nested in dicts too) made plain Python, for JSON."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def unified_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per model, the mean over its cells (task × probe × setting) of the primary metric
    normalised so that the raw-feature baseline scores 0 and the best model in the cell 1
    (signs flipped for lower-is-better metrics). Where raw features are themselves the best,
    the scale runs from the worst model (-1) to raw (0) instead, so falling short of raw
    features always costs; values are clipped to [-1, 1]. The raw reference of a cell is raw
    features with the same probe, or, for probes raw features cannot take (fine-tuning), raw
    features' best probe at that setting; cells without one are left out. Models scored in
    different cells are not compared by these means alone: see :func:`ranked_unified`."""
    return {m: float(np.mean(v)) for m, v in _unified_cells(rows).items()}


def unified_cell_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Per model, how many cells its unified score averages."""
    return {m: len(v) for m, v in _unified_cells(rows).items()}


def ranked_unified(unified: dict[str, float], cells: dict[str, int]) -> list[tuple[str, float]]:
    """``(model, score)`` best first, a model scored in more cells before one scored in fewer
    (a mean over a probe or setting where every model did well would otherwise outrank one over
    all of them), a missing score last."""
    most = max(cells.values(), default=0)

    def key(kv: tuple[str, float]) -> tuple[bool, int, float]:
        ok = bool(np.isfinite(kv[1]))
        return (not ok, most - cells.get(kv[0], most), -kv[1] if ok else 0.0)

    return sorted(unified.items(), key=key)


def cells_column(cells: dict[str, int]) -> dict[str, str]:
    """``"9 of 27"`` per model where the models' cell counts differ; empty where they agree."""
    if len(set(cells.values())) < 2:
        return {}
    most = max(cells.values())
    return {m: f"{n} of {most}" for m, n in cells.items()}


def _unified_cells(rows: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Per model, its normalised score in each cell it was scored in (see :func:`unified_scores`)."""
    by_cell: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if np.isfinite(r["mean"]):
            by_cell[(r["task"], r["probe"], r["setting"])].append(r)
    raw_best = _raw_best(by_cell)
    per_model: dict[str, list[float]] = defaultdict(list)
    for (task, _, setting), members in by_cell.items():
        raw = next((r["mean"] for r in members if r["model"] == RAW), raw_best.get((task, setting)))
        if raw is None:
            continue
        sign = 1 if members[0]["higher_is_better"] else -1
        values = {r["model"]: sign * r["mean"] for r in members}
        ref = sign * raw
        best, worst = max([*values.values(), ref]), min([*values.values(), ref])
        scale = best - ref if best > ref else ref - worst
        for model, v in values.items():
            per_model[model].append(float(np.clip((v - ref) / scale, -1, 1)) if scale > 0 else 0.0)
    return per_model


def _raw_best(by_cell: dict[tuple[str, str, str], list[dict[str, Any]]]) -> dict[tuple[str, str], float]:
    """(task, setting) -> raw features' best mean over probes: the reference of the cells
    whose probe raw features cannot take."""
    raw_best: dict[tuple[str, str], float] = {}
    for (task, _, setting), members in by_cell.items():
        for r in members:
            if r["model"] == RAW:
                sign = 1 if r["higher_is_better"] else -1
                prev = raw_best.get((task, setting))
                if prev is None or sign * r["mean"] > sign * prev:
                    raw_best[(task, setting)] = r["mean"]
    return raw_best
