"""The bench report: one self-contained HTML page comparing several encoders on several tasks.

The page holds, top to bottom: what was run (suite, tasks, runs, seeds, protocol), the
unified score of every model, one section per task (label-efficiency curves and the results
table, best cell of each column in bold), the embedding map (a t-SNE of each model's test
features per task; van der Maaten & Hinton, 2008) and the pretraining loss of each run.
Plots are PNG images embedded as base64; the page loads no external asset and runs no script.
The page is ``templates/report.html.j2`` (Jinja2, autoescaped); this module gathers what it shows.

    page = render(result)                                   # the HTML as a string
    write_report(result, Path("results/report.html"))        # written atomically
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from unlabeled._console import UnlabeledError
from unlabeled.bench.baselines import is_baseline
from unlabeled.bench.embedding_map import Maps, embedding_maps
from unlabeled.bench.figures import Curve, curves_figure, embedding_figure, loss_figure, model_colours, png_base64
from unlabeled.bench.pages import render_page
from unlabeled.bench.report_tables import metrics_table, results_table, unified_table
from unlabeled.bench.result import BenchResult
from unlabeled.bench.rows import finite, order_settings, row_higher_is_better, unique
from unlabeled.curate.records import SUMMARY_FILE
from unlabeled.runs import open_run
from unlabeled.train import checkpoint as ckpt


def report_order(result: BenchResult) -> tuple[list[str], list[str]]:
    """(tasks, models) in the order the report shows them: the settings' tasks, then any
    other of the rows; models as the rows first name them."""
    tasks = unique([*(result.settings.get("tasks") or {}), *(r["task"] for r in result.rows)])
    return tasks, unique(r["model"] for r in result.rows)


def render(result: BenchResult, maps: Maps | None = None) -> str:
    """The whole report as one HTML string (see the module docstring for its sections).
    ``maps``: the embedding maps (:func:`unlabeled.bench.embedding_map.embedding_maps`),
    computed from ``result.embeddings`` when not given."""
    rows, s = list(result.rows), dict(result.settings)
    task_info: dict[str, dict[str, Any]] = dict(s.get("tasks") or {})
    tasks, models = report_order(result)
    if maps is None:
        maps = embedding_maps(result.embeddings or {}, tasks, models)
    baselines = {r["model"] for r in rows if is_baseline(r)}
    colours = model_colours(models, baselines)
    slugs = _slugs(tasks)
    runs = [str(r) for r in s.get("runs") or []]
    curves = _loss_curves(runs)
    return render_page(
        "report.html.j2",
        title=str(s["suite"]) if s.get("suite") else ", ".join(map(str, tasks)) or "no tasks",
        suite=s.get("suite"),
        tasks=[_task(t, slugs[t], [r for r in rows if r["task"] == t], task_info.get(t, {}), colours) for t in tasks],
        runs=runs,
        seeds=s.get("seeds"),
        probes=", ".join(map(str, s.get("probes") or unique(r["probe"] for r in rows))),
        label_settings=", ".join(order_settings(rows)),
        seconds=f"{s['seconds']:.0f}" if finite(s.get("seconds")) else None,
        unified=unified_table(result.unified or {}, baselines, result.unified_cells),
        maps=[
            {"task": t, "image": _image(embedding_figure(m, task_info.get(t, {}).get("kind")), "embedding-map", alt)}
            for t, m in maps.items()
            for alt in [f"t-SNE map of {t}"]
        ],
        loss=_image(loss_figure(curves), "loss", "pretraining loss", "loss") if curves else None,
        data=[d for r in runs for d in pretraining_data(r)],
    )


def write_report(result: BenchResult, path: str | os.PathLike[str], maps: Maps | None = None) -> Path:
    """Write ``render(result)`` to ``path`` (UTF-8, atomically; folders created) and return it."""
    path = Path(path)
    page = render(result, maps)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path


def _image(fig: Any, cls: str, alt: str, ident: str | None = None) -> dict[str, Any]:
    return {"png": png_base64(fig), "cls": cls, "alt": alt, "id": ident}


def _slugs(tasks: list[str]) -> dict[str, str]:
    """task -> a unique anchor name of letters, digits and dashes."""
    taken: set[str] = set()
    out = {}
    for t in tasks:
        base = re.sub(r"[^a-z0-9]+", "-", str(t).lower()).strip("-") or "task"
        slug, i = base, 2
        while slug in taken:
            slug, i = f"{base}-{i}", i + 1
        taken.add(slug)
        out[t] = slug
    return out


def _task(
    name: str, slug: str, rows: list[dict[str, Any]], info: dict[str, Any], colours: dict[str, Any]
) -> dict[str, Any]:
    """What the page shows of one task: its line in the summary and, when it has rows, its section."""
    first = rows[0] if rows else {}
    out = {
        "name": name,
        "slug": slug,
        "kind": info.get("kind", ""),
        "metric": info.get("metric") or first.get("metric", ""),
        "train": info.get("train", ""),
        "test": info.get("test", ""),
        "split": info.get("split", ""),
        "results": None,
    }
    if not rows:
        return out
    desc = []
    if info.get("train") is not None and info.get("test") is not None:
        desc.append(f"{info['train']} train / {info['test']} test samples")
    if info.get("split"):
        desc.append(f"split: {info['split']}")
    if info.get("kind"):
        desc.append(str(info["kind"]))
    return out | {
        "desc": desc,
        "curves": _image(curves_figure(rows, info, colours), "curves", f"label-efficiency curves on {name}"),
        "metric_shown": first["metric"],
        "direction": "higher" if row_higher_is_better(first) else "lower",
        "results": results_table(rows),
        "metrics": metrics_table(rows),
    }


def _curation(path: Path) -> str:
    """One line of a curated collection's ``curation.json``: kept of input, removed per step."""
    try:
        summary = json.loads((path / SUMMARY_FILE).read_text())
        steps = ", ".join(f"{k} -{v['removed']:,}" for k, v in summary["steps"].items())
        return f"{summary['kept']:,} of {summary['input']:,} documents kept ({steps})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""  # not curated, or moved: nothing to say


def pretraining_data(run: str | os.PathLike[str]) -> list[dict[str, str]]:
    """What a run was pretrained on, one row per collection: its name, its share of each batch
    and over the last steps (``pretrain --mix``, ``--upsample-last``), and, for a collection
    ``curate`` wrote, what curation kept and removed."""
    try:
        data = open_run(run).config["data"]
    except (UnlabeledError, OSError, ValueError, KeyError):
        return []
    mix = data.get("mix") or {"parts": [{"path": data["path"], "name": data["name"], "weight": 1.0}]}
    last = mix.get("last_weights") or [None] * len(mix["parts"])
    return [
        {
            "run": Path(run).name,
            "collection": part["name"],
            "share": f"{part['weight']:.3g}",
            "last": "" if w is None else f"{w:.3g} (last {mix['last']:.0%})",
            "curation": _curation(Path(part["path"])),
        }
        for part, w in zip(mix["parts"], last, strict=True)
    ]


def _loss_curves(runs: list[str]) -> list[Curve]:
    """(label, steps, loss) of every run that logged a loss; a label is the run's folder name,
    with its parent's when two runs share a name."""
    curves: list[tuple[str, list[float], list[float]]] = []
    for path in runs:
        try:
            logged = open_run(path).metrics()
        except (UnlabeledError, OSError, ValueError):
            continue  # a run folder that moved or holds no config: nothing to draw
        pts = [(r["step"], r["loss"]) for r in logged if finite(r.get("step")) and finite(r.get("loss"))]
        if pts:
            curves.append((str(path), *map(list, zip(*pts, strict=True))))
    names = [Path(p).name for p, _, _ in curves]
    return [
        (name if names.count(name) == 1 else f"{Path(p).parent.name}/{name}", steps, loss)
        for (p, steps, loss), name in zip(curves, names, strict=True)
    ]
