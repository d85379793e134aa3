"""The bench report: one self-contained HTML page comparing several encoders on several tasks.

The page holds, top to bottom: what was run (suite, tasks, runs, seeds, protocol), the
unified score of every model, one section per task (label-efficiency curves and the results
table, best cell of each column in bold), the embedding map (a t-SNE of each model's test
features per task; van der Maaten & Hinton, 2008) and the pretraining loss of each run.
Plots are PNG images embedded as base64; the page loads no external asset and runs no script.

    page = render(result)                                   # the HTML as a string
    write_report(result, Path("results/report.html"))        # written atomically
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.runs import open_run
from unlabeled.train import checkpoint as ckpt

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from unlabeled.bench.benchmark import BenchResult

BASELINES = ("raw", "random-init", "supervised")
LOWER_IS_BETTER = frozenset({"mae", "rmse", "mse", "loss", "log_loss", "brier"})
TSNE_POINT_BUDGET = 20_000  # all panels together: about a minute of t-SNE on one core
TSNE_MIN_POINTS = 300  # a panel is never subsampled below this when the budget is shared

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 76rem; color: #222; padding: 0 1rem; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0 1rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; vertical-align: top; }
th.name, td.name { text-align: left; }
th .n { font-weight: normal; color: #777; font-size: 0.8rem; }
tr.baseline td { color: #888; }
td.best b { color: #000; }
tr.baseline td.best b { color: #555; }
.note { color: #555; font-size: 0.9rem; max-width: 60rem; }
img { max-width: 100%; display: block; margin: 0.5rem 0; }
code { background: #f4f4f4; padding: 0.1rem 0.3rem; }
section.task { border-top: 2px solid #eee; margin-top: 2rem; }
details { margin: 0.5rem 0 1rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _img(fig: Figure, cls: str, alt: str, ident: str | None = None) -> str:
    attr = f" id='{_e(ident)}'" if ident else ""
    return f"<img{attr} class='{cls}' alt='{_e(alt)}' src='data:image/png;base64,{_png(fig)}'>"


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _slug(name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "task"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


def is_baseline(row: dict[str, Any]) -> bool:
    """A row of a baseline model: raw features, a random-init encoder, or supervised from scratch."""
    if "baseline" in row:
        return bool(row["baseline"])
    model = str(row["model"])
    return model in BASELINES or model.startswith("random-init:")


def higher_is_better(row: dict[str, Any]) -> bool:
    """Whether a larger primary metric is better for this row (errors such as mae are not)."""
    return bool(row.get("higher_is_better", str(row.get("metric", "")).lower() not in LOWER_IS_BETTER))


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
        n = [r["n_labels"] for r in group if _finite(r.get("n_labels"))]
        frac = group[0].get("fraction")
        value = float(frac) if frac is not None else float(group[0].get("shots") or 0)
        return (float(np.median(n)) if n else math.inf, int(frac is not None), value)

    return sorted(by, key=key)


def _num(x: Any, ref: float | None = None) -> str:
    """A metric value with about four significant digits; ``ref`` fixes the decimals (so that
    a std is printed to the same precision as its mean)."""
    if not _finite(x):
        return "–"
    a = abs(ref if _finite(ref) else x)
    decimals = 4 if a < 10 else 2 if a < 100 else 1 if a < 1000 else 0
    return f"{x:.{decimals}f}"


def _mean_std(mean: Any, std: Any) -> str:
    return f"{_num(mean)} ± {_num(std, mean)}"


# ---------------------------------------------------------------------------------------
# figures


def _model_colours(models: list[str], baselines: set[str]) -> dict[str, Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    ordered = [m for m in models if m not in baselines] + [m for m in models if m in baselines]
    return {m: cmap(i % 10) for i, m in enumerate(ordered)}


def _train_size(rows: list[dict[str, Any]], task_info: dict[str, Any] | None) -> float | None:
    """The task's train-split size: from the settings, else from a fraction row's label count."""
    if task_info and _finite(task_info.get("train")) and task_info["train"] > 0:
        return float(task_info["train"])
    frac_rows = [r for r in rows if r.get("fraction") and _finite(r.get("n_labels"))]
    if not frac_rows:
        return None
    r = max(frac_rows, key=lambda r: r["fraction"])
    return r["n_labels"] / r["fraction"]


def curves_figure(
    rows: list[dict[str, Any]],
    task_info: dict[str, Any] | None = None,
    colours: dict[str, Any] | None = None,
) -> Figure:
    """Label-efficiency curves of one task: the primary metric (mean, error bar = std over
    seeds) against the labels used on a log axis, one panel per probe, one line per model,
    baselines dashed. Label fractions are joined by lines; a k-shot setting is drawn as
    diamonds at the share of the train split it labelled, marked by a dotted vertical line."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    baselines = {r["model"] for r in rows if is_baseline(r)}
    models = _unique(r["model"] for r in rows)
    colours = colours or _model_colours(models, baselines)
    probes = _unique(r["probe"] for r in rows)
    train = _train_size(rows, task_info)

    def x_of(r: dict[str, Any]) -> float:
        if train is None:
            return float(r.get("n_labels") or 1)
        if r.get("fraction") is not None:
            return 100.0 * r["fraction"]
        return 100.0 * r["n_labels"] / train

    ncols = min(len(probes), 3)
    nrows = math.ceil(len(probes) / ncols)
    fig = Figure(figsize=(4.3 * ncols + 1.6, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    any_shots = False
    for ax, probe in zip(axes, probes, strict=False):
        in_panel = [r for r in rows if r["probe"] == probe]
        for model in _unique(r["model"] for r in in_panel):
            mine = [r for r in in_panel if r["model"] == model]
            ls = "--" if model in baselines else "-"
            pts = sorted((x_of(r), r["mean"], r["std"]) for r in mine if r.get("fraction") is not None)
            if pts:
                x, m, s = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
                ax.errorbar(x, m, yerr=s, color=colours[model], ls=ls, marker="o", ms=4, capsize=3, lw=1.4)
            shots = [r for r in mine if r.get("fraction") is None]
            for r in shots:
                ax.errorbar(
                    [x_of(r)],
                    [r["mean"]],
                    yerr=[r["std"]],
                    color=colours[model],
                    marker="D",
                    ms=5,
                    capsize=3,
                    ls="none",
                    mfc="white" if model in baselines else colours[model],
                )
        shot_x = {setting_name(r): x_of(r) for r in in_panel if r.get("fraction") is None}
        any_shots |= bool(shot_x)
        for name, x in shot_x.items():
            ax.axvline(x, color="0.75", ls=":", lw=1, zorder=0)
            ax.annotate(
                name,
                (x, 0.98),
                xycoords=ax.get_xaxis_transform(),
                ha="center",
                va="top",
                fontsize=7,
                color="0.35",
                bbox={"fc": "white", "ec": "none", "pad": 0.5},
            )
        ax.set_xscale("log")
        ticks = sorted({x_of(r) for r in in_panel if r.get("fraction") is not None})
        if ticks and train is not None:
            ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
            ax.minorticks_off()
        elif train is not None:
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
        ax.set_xlabel("labels used (% of train split)" if train is not None else "labelled samples")
        first = in_panel[0]
        ax.set_ylabel(f"{first['metric']} ({'higher' if higher_is_better(first) else 'lower'} is better)")
        ax.set_title(f"{probe} probe", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[len(probes) :]:
        ax.set_visible(False)
    handles = [
        Line2D([], [], color=colours[m], ls="--" if m in baselines else "-", marker="o", ms=4, label=m)
        for m in sorted(models, key=lambda m: m in baselines)
    ]
    if any_shots:
        handles.append(Line2D([], [], color="0.3", ls="none", marker="D", ms=5, label="k-shot"))
    fig.legend(handles=handles, loc="outside right upper", fontsize=8, frameon=False)
    return fig


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D t-SNE map of ``features`` (n, d): van der Maaten & Hinton, "Visualizing Data using
    t-SNE", JMLR 2008. PCA initialisation, perplexity min(30, (n - 1) / 3), fixed random state;
    features wider than 50 are first reduced to 50 principal components, as the paper does; 500
    iterations (the first 250 with early exaggeration), which is where the map of a few thousand
    points stops changing visibly."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    x = np.nan_to_num(np.asarray(features, dtype=np.float32).reshape(len(features), -1))
    n = len(x)
    if x.shape[1] < 2:
        x = np.pad(x, ((0, 0), (0, 2 - x.shape[1])))
    if n < 5 or np.ptp(x, axis=0).max() == 0:
        return np.asarray(x[:, :2], dtype=np.float32)  # nothing for t-SNE to arrange
    if x.shape[1] > 50 and n > 50:  # PCA cannot give more components than samples
        x = PCA(50, random_state=seed).fit_transform(x).astype(np.float32)
    tsne = TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", max_iter=500, random_state=seed)
    # one thread: the Barnes-Hut gradient's OpenMP threads spin-wait, and on a machine busy with
    # anything else (probe workers, a second job) that made it 20 times slower, not faster
    with threadpool_limits(1):
        out = tsne.fit_transform(x)
    return np.asarray(out if np.isfinite(out).all() else x[:, :2], dtype=np.float32)


def _is_regression(labels: np.ndarray, kind: str | None) -> bool:
    if kind is not None:
        return kind == "regression"
    if not np.issubdtype(labels.dtype, np.floating):
        return False
    return not np.allclose(labels, np.round(labels)) or len(np.unique(labels)) > 50


def embedding_figure(maps: dict[str, tuple[np.ndarray, np.ndarray]], kind: str | None = None, seed: int = 0) -> Figure:
    """One small t-SNE panel per model (model -> (features, labels)), points coloured by label:
    a discrete colormap for classes, a continuous one (with a colour bar) for regression targets."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    models = list(maps)
    all_labels = np.concatenate([np.asarray(y).reshape(-1) for _, y in maps.values()])
    regression = _is_regression(all_labels, kind)
    ncols = min(len(models), 4)
    nrows = math.ceil(len(models) / ncols)
    fig = Figure(figsize=(2.7 * ncols + 1.4, 2.7 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    if regression:
        y_all = all_labels.astype(float)
        norm = matplotlib.colors.Normalize(float(np.nanmin(y_all)), float(np.nanmax(y_all)))
        cmap = matplotlib.colormaps["viridis"]
    else:
        classes = np.unique(all_labels)
        k = len(classes)
        cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20" if k <= 20 else "turbo"].resampled(max(k, 1))
        norm = matplotlib.colors.Normalize(-0.5, k - 0.5)
    scatter = None
    for ax, model in zip(axes, models, strict=False):
        feats, y = maps[model]
        y = np.asarray(y).reshape(-1)
        xy = tsne_2d(feats, seed=seed)
        c = y.astype(float) if regression else np.searchsorted(classes, y)
        size = float(np.clip(3000 / max(len(xy), 1), 3, 12))  # fewer points, larger dots
        scatter = ax.scatter(xy[:, 0], xy[:, 1], c=c, cmap=cmap, norm=norm, s=size, linewidths=0, alpha=0.8)
        ax.set_title(model, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(models) :]:
        ax.set_visible(False)
    if regression and scatter is not None:
        fig.colorbar(scatter, ax=list(axes[: len(models)]), label="target", shrink=0.8)
    elif not regression and len(classes) <= 20:
        handles = [
            Line2D([], [], ls="none", marker="o", ms=5, color=cmap(norm(i)), label=str(cls))
            for i, cls in enumerate(classes)
        ]
        fig.legend(handles=handles, loc="outside right upper", fontsize=7, frameon=False, title="label")
    return fig


def loss_figure(runs: list[str]) -> Figure | None:
    """Pretraining loss against step, one line per run; None when no run logged any."""
    from matplotlib.figure import Figure

    curves: list[tuple[str, list[float], list[float]]] = []
    for path in runs:
        try:
            logged = open_run(path).metrics()
        except (UnlabeledError, OSError, ValueError):
            continue  # a run folder that moved or holds no config: nothing to draw
        pts = [(r["step"], r["loss"]) for r in logged if _finite(r.get("step")) and _finite(r.get("loss"))]
        if pts:
            curves.append((str(path), *map(list, zip(*pts, strict=True))))
    if not curves:
        return None
    names = [Path(p).name for p, _, _ in curves]
    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.subplots()
    for (path, steps, loss), name in zip(curves, names, strict=True):
        label = name if names.count(name) == 1 else f"{Path(path).parent.name}/{name}"
        ax.plot(steps, loss, label=label, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("pretraining loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------
# tables


def unified_table(unified: dict[str, float], baselines: set[str]) -> str:
    """The unified score of every model, best first (a missing score last)."""
    ranked = sorted(unified.items(), key=lambda kv: (not _finite(kv[1]), -kv[1] if _finite(kv[1]) else 0.0))
    out = [
        "<table id='unified'><thead><tr><th>rank</th><th class='name'>model</th>"
        "<th>unified score</th></tr></thead><tbody>"
    ]
    for i, (model, score) in enumerate(ranked, 1):
        cls = "baseline" if model in baselines else "model"
        shown = f"{score:.3f}" if _finite(score) else "–"
        out.append(f"<tr class='{cls}'><td>{i}</td><td class='name'>{_e(model)}</td><td>{shown}</td></tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _row_order(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(model, probe) pairs grouped by probe, pretrained models before baselines."""
    probes = _unique(r["probe"] for r in rows)
    pairs = _unique((r["model"], r["probe"], is_baseline(r)) for r in rows)
    return [(m, p) for probe in probes for base in (False, True) for m, p, b in pairs if p == probe and b == base]


def _cell_title(r: dict[str, Any]) -> str:
    parts = []
    if r.get("scores"):
        parts.append("per seed: " + ", ".join(_num(s, r.get("mean")) for s in r["scores"]))
    if r.get("n_labels") is not None:
        parts.append(f"{r['n_labels']} labels")
    if r.get("params"):
        chosen = json.dumps(r["params"], default=str)
        parts.append("chosen: " + (chosen if len(chosen) <= 300 else chosen[:297] + "..."))
    return "; ".join(parts)


def results_table(rows: list[dict[str, Any]]) -> str:
    """One task's table: rows = model × probe, columns = label settings (fewest labels first),
    cells mean ± std of the primary metric; the best cell of each column in bold (lowest for a
    lower-is-better metric); baseline rows greyed."""
    settings = order_settings(rows)
    cell = {(r["model"], r["probe"], setting_name(r)): r for r in rows}
    best: dict[str, set[tuple[str, str]]] = {}
    head = ["<th class='name'>model</th><th class='name'>probe</th>"]
    for s in settings:
        col = [r for r in rows if setting_name(r) == s and _finite(r.get("mean"))]
        if col:
            pick = max if higher_is_better(col[0]) else min
            top = pick(r["mean"] for r in col)
            tol = 1e-12 * max(1.0, abs(top))
            best[s] = {(r["model"], r["probe"]) for r in col if abs(r["mean"] - top) <= tol}
        n = sorted({r["n_labels"] for r in rows if setting_name(r) == s and _finite(r.get("n_labels"))})
        counts = "" if not n else f"{n[0]} labels" if len(n) == 1 else f"{n[0]}–{n[-1]} labels"
        head.append(f"<th>{_e(s)}" + (f"<br><span class='n'>{counts}</span>" if counts else "") + "</th>")
    out = ["<table class='results'><thead><tr>", *head, "</tr></thead><tbody>"]
    for model, probe in _row_order(rows):
        any_row = next(r for r in rows if r["model"] == model and r["probe"] == probe)
        cls = "baseline" if is_baseline(any_row) else "model"
        out.append(f"<tr class='{cls}'><td class='name'>{_e(model)}</td><td class='name'>{_e(probe)}</td>")
        for s in settings:
            r = cell.get((model, probe, s))
            if r is None:
                out.append("<td class='missing'>–</td>")
                continue
            text = _e(_mean_std(r.get("mean"), r.get("std")))
            title = _e(_cell_title(r))
            if (model, probe) in best.get(s, ()):
                out.append(f"<td class='best' title='{title}'><b>{text}</b></td>")
            else:
                out.append(f"<td title='{title}'>{text}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def metrics_table(rows: list[dict[str, Any]]) -> str | None:
    """Every metric recorded for one task (mean ± std), or None when only the primary one was."""
    names = _unique(name for r in rows for name in (r.get("metrics") or {}))
    if not names or names == [rows[0].get("metric")]:
        return None
    settings = order_settings(rows)
    cell = {(r["model"], r["probe"], setting_name(r)): r for r in rows}
    out = [
        "<table class='metrics'><thead><tr><th class='name'>model</th><th class='name'>probe</th>"
        "<th class='name'>setting</th>",
        *[f"<th>{_e(n)}</th>" for n in names],
        "</tr></thead><tbody>",
    ]
    for model, probe in _row_order(rows):
        for s in settings:
            r = cell.get((model, probe, s))
            if r is None:
                continue
            cls = "baseline" if is_baseline(r) else "model"
            out.append(
                f"<tr class='{cls}'><td class='name'>{_e(model)}</td><td class='name'>{_e(probe)}</td>"
                f"<td class='name'>{_e(s)}</td>"
            )
            for n in names:
                m = (r.get("metrics") or {}).get(n)
                out.append("<td>–</td>" if not m else f"<td>{_e(_mean_std(m.get('mean'), m.get('std')))}</td>")
            out.append("</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------
# the page


def _embedding_panels(result: BenchResult, tasks: list[str], models: list[str]) -> dict[str, dict[str, Any]]:
    """task -> model -> (features, labels), in report order, subsampled so that all panels
    together stay within TSNE_POINT_BUDGET points."""
    raw = getattr(result, "embeddings", None) or {}
    pairs = [k for k in raw if isinstance(k, tuple) and len(k) == 2]
    if not pairs:
        return {}
    task_order = tasks + [t for t in _unique(t for t, _ in pairs) if t not in tasks]
    model_order = models + [m for m in _unique(m for _, m in pairs) if m not in models]
    total = sum(len(raw[k][0]) for k in pairs)
    cap = None if total <= TSNE_POINT_BUDGET else max(TSNE_MIN_POINTS, TSNE_POINT_BUDGET // len(pairs))
    rng = np.random.default_rng(0)
    panels: dict[str, dict[str, Any]] = {}
    for task in task_order:
        for model in model_order:
            if (task, model) not in raw:
                continue
            x, y = (np.asarray(a) for a in raw[(task, model)])
            if cap is not None and len(x) > cap:
                keep = np.sort(rng.choice(len(x), cap, replace=False))
                x, y = x[keep], y[keep]
            if len(x):
                panels.setdefault(task, {})[model] = (x, y)
    return panels


def render(result: BenchResult) -> str:
    """The whole report as one HTML string (see the module docstring for its sections)."""
    rows = list(result.rows)
    s = dict(result.settings)
    task_info: dict[str, dict[str, Any]] = dict(s.get("tasks") or {})
    tasks = _unique([*task_info, *(r["task"] for r in rows)])
    models = _unique(r["model"] for r in rows)
    baselines = {r["model"] for r in rows if is_baseline(r)}
    colours = _model_colours(models, baselines)
    taken: set[str] = set()
    slugs = {t: _slug(str(t), taken) for t in tasks}
    suite = s.get("suite")
    what = (
        f"suite <code>{_e(suite)}</code>"
        if suite
        else (f"<code>{_e(tasks[0])}</code>" if len(tasks) == 1 else f"{len(tasks)} tasks")
    )
    title = str(suite) if suite else ", ".join(map(str, tasks)) or "no tasks"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>unlabeled bench: {_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Few-label benchmark on {what}</h1>",
        "<section id='summary'>",
        "<table id='tasks'><thead><tr><th class='name'>task</th><th class='name'>kind</th>"
        "<th class='name'>metric</th><th>train</th><th>test</th><th class='name'>split</th></tr></thead><tbody>",
    ]
    for t in tasks:
        info = task_info.get(t, {})
        first = next((r for r in rows if r["task"] == t), {})
        metric = info.get("metric") or first.get("metric", "")
        cells = [f"<a href='#task-{slugs[t]}'>{_e(t)}</a>", _e(info.get("kind", "")), _e(metric)]
        numbers = [_e(info.get("train", "")), _e(info.get("test", ""))]
        parts.append(
            "<tr>"
            + "".join(f"<td class='name'>{c}</td>" for c in cells)
            + "".join(f"<td>{c}</td>" for c in numbers)
            + f"<td class='name'>{_e(info.get('split', ''))}</td></tr>"
        )
    parts.append("</tbody></table>")
    runs = [str(r) for r in s.get("runs") or []]
    if runs:
        parts.append("<p>Runs: " + ", ".join(f"<code>{_e(r)}</code>" for r in runs) + "</p>")
    seeds = s.get("seeds")
    probes = s.get("probes") or _unique(r["probe"] for r in rows)
    label_settings = order_settings(rows)
    protocol = (
        (f"{_e(seeds)} seed(s) per cell, shown as mean ± std. " if seeds is not None else "")
        + f"Probes: {_e(', '.join(map(str, probes)))}. Label settings: {_e(', '.join(label_settings))}. "
        "Hyper-parameters are chosen on a validation split of the labelled subset; the test split is scored "
        "once per final model."
    )
    if _finite(s.get("seconds")):
        protocol += f" The benchmark took {s['seconds']:.0f} s."
    parts.append(f"<p>{protocol}</p>")
    parts.append(
        "<p class='note'>Grey rows and dashed lines are baselines: <code>raw</code> = the raw inputs as features, "
        "<code>random-init</code> = the same encoder with random weights, <code>supervised</code> = the same "
        "architecture trained from scratch on the same labels (fine-tune only).</p></section>"
    )

    unified = getattr(result, "unified", None) or {}
    if unified:
        parts += [
            "<section id='unified-score'><h2>Unified score</h2>",
            "<p class='note'>In every cell (task, probe, label setting) the primary metric is rescaled so that the "
            "raw-feature baseline scores 0 and the best result in the cell scores 1 (for lower-is-better metrics the "
            "scale is flipped, so higher is always better). Where raw features are the best, the scale runs from the "
            "worst model (-1) to raw features (0) instead; values are clipped to [-1, 1]. A model's unified score "
            "is its "
            "mean over all cells; below 0 means worse than raw features.</p>",
            unified_table(unified, baselines),
            "</section>",
        ]

    for t in tasks:
        trows = [r for r in rows if r["task"] == t]
        if not trows:
            continue
        info = task_info.get(t, {})
        metric = trows[0]["metric"]
        direction = "higher" if higher_is_better(trows[0]) else "lower"
        desc = []
        if info.get("train") is not None and info.get("test") is not None:
            desc.append(f"{_e(info['train'])} train / {_e(info['test'])} test samples")
        if info.get("split"):
            desc.append(f"split: {_e(info['split'])}")
        if info.get("kind"):
            desc.append(_e(info["kind"]))
        parts += [
            f"<section class='task' id='task-{slugs[t]}'><h2>Task <code>{_e(t)}</code></h2>",
            f"<p>{'; '.join(desc)}</p>" if desc else "",
            _img(curves_figure(trows, info, colours), "curves", f"label-efficiency curves on {t}"),
            f"<h3>{_e(metric)} ({direction} is better), mean ± std over seeds</h3>",
            results_table(trows),
        ]
        extra = metrics_table(trows)
        if extra:
            parts += ["<details><summary>All metrics</summary>", extra, "</details>"]
        parts.append("</section>")

    panels = _embedding_panels(result, tasks, models)
    if panels:
        parts += [
            "<section id='embeddings'><h2>Embedding map</h2>",
            "<p class='note'>t-SNE (van der Maaten &amp; Hinton, 2008) of each model's features of the test "
            "samples, coloured by label; neighbourhoods are meaningful, distances between far clusters and the axes "
            "are not.</p>",
        ]
        for t, maps in panels.items():
            kind = task_info.get(t, {}).get("kind")
            parts += [f"<h3>{_e(t)}</h3>", _img(embedding_figure(maps, kind), "embedding-map", f"t-SNE map of {t}")]
        parts.append("</section>")

    loss = loss_figure(runs)
    if loss is not None:
        parts += [
            "<section id='pretraining'><h2>Pretraining</h2>",
            _img(loss, "loss", "pretraining loss", "loss"),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(result: BenchResult, path: str | os.PathLike[str]) -> Path:
    """Write ``render(result)`` to ``path`` (UTF-8, atomically; folders created) and return it."""
    path = Path(path)
    page = render(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path
