"""The bench report's figures, drawn from data computed beforehand: label-efficiency curves
of one task, the embedding map (2-D coordinates already computed, see
:mod:`unlabeled.bench.embedding_map`) and the pretraining loss curves; and a figure as the
base64 PNG the page embeds.

matplotlib is imported inside the functions that draw: importing it costs about 0.7 s, and
this module is imported with ``unlabeled`` (through the bench), which most commands never
need a figure from."""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from unlabeled.bench.baselines import is_baseline
from unlabeled.bench.rows import finite, row_higher_is_better, setting_name, unique

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Curve = tuple[str, list[float], list[float]]  # (label, steps, loss)


def png_base64(fig: Figure) -> str:
    """The figure as a PNG, base64-encoded for a ``data:`` URL."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def model_colours(models: list[str], baselines: set[str]) -> dict[str, Any]:
    """One colour per model, the same in every figure: pretrained models first, then baselines."""
    # matplotlib lazily: see the module docstring
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    ordered = [m for m in models if m not in baselines] + [m for m in models if m in baselines]
    return {m: cmap(i % 10) for i, m in enumerate(ordered)}


def _train_size(rows: list[dict[str, Any]], task_info: dict[str, Any] | None) -> float | None:
    """The task's train-split size: from the settings, else from a fraction row's label count."""
    if task_info and finite(task_info.get("train")) and task_info["train"] > 0:
        return float(task_info["train"])
    frac_rows = [r for r in rows if r.get("fraction") and finite(r.get("n_labels"))]
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
    # matplotlib lazily: see the module docstring
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    baselines = {r["model"] for r in rows if is_baseline(r)}
    models = unique(r["model"] for r in rows)
    colours = colours or model_colours(models, baselines)
    probes = unique(r["probe"] for r in rows)
    train = _train_size(rows, task_info)
    ncols = min(len(probes), 3)
    nrows = math.ceil(len(probes) / ncols)
    fig = Figure(figsize=(4.3 * ncols + 1.6, 3.3 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    any_shots = False
    for ax, probe in zip(axes, probes, strict=False):
        in_panel = [r for r in rows if r["probe"] == probe]
        any_shots |= _curves_panel(ax, in_panel, train, colours, baselines)
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


def _x_of(r: dict[str, Any], train: float | None) -> float:
    """Where a row goes on the labels axis: % of the train split, else labelled samples."""
    if train is None:
        return float(r.get("n_labels") or 1)
    if r.get("fraction") is not None and not r.get("n_labels"):
        return 100.0 * r["fraction"]
    # the labels drawn: a fraction raised to one label a class sits where its labels put it
    return 100.0 * r["n_labels"] / train


def _curves_panel(
    ax: Axes, in_panel: list[dict[str, Any]], train: float | None, colours: dict[str, Any], baselines: set[str]
) -> bool:
    """One probe's panel; whether it has a k-shot setting."""
    # matplotlib lazily: see the module docstring
    from matplotlib.ticker import FuncFormatter

    for model in unique(r["model"] for r in in_panel):
        mine = [r for r in in_panel if r["model"] == model]
        ls = "--" if model in baselines else "-"
        pts = sorted((_x_of(r, train), r["mean"], r["std"]) for r in mine if r.get("fraction") is not None)
        if pts:
            x, m, s = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
            ax.errorbar(x, m, yerr=s, color=colours[model], ls=ls, marker="o", ms=4, capsize=3, lw=1.4)
        for r in (r for r in mine if r.get("fraction") is None):
            mfc = "white" if model in baselines else colours[model]
            ax.errorbar(
                [_x_of(r, train)],
                [r["mean"]],
                yerr=[r["std"]],
                color=colours[model],
                marker="D",
                ms=5,
                capsize=3,
                ls="none",
                mfc=mfc,
            )
    shot_x = {setting_name(r): _x_of(r, train) for r in in_panel if r.get("fraction") is None}
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
    ticks = sorted({_x_of(r, train) for r in in_panel if r.get("fraction") is not None})
    if ticks and train is not None:
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        ax.minorticks_off()
    elif train is not None:
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    ax.set_xlabel("labels used (% of train split)" if train is not None else "labelled samples")
    first = in_panel[0]
    ax.set_ylabel(f"{first['metric']} ({'higher' if row_higher_is_better(first) else 'lower'} is better)")
    ax.set_title(f"{first['probe']} probe", fontsize=10)
    ax.grid(alpha=0.3)
    return bool(shot_x)


def _is_regression(labels: np.ndarray, kind: str | None) -> bool:
    if kind is not None:
        return kind == "regression"
    if not np.issubdtype(labels.dtype, np.floating):
        return False
    return not np.allclose(labels, np.round(labels)) or len(np.unique(labels)) > 50


def embedding_figure(maps: dict[str, tuple[np.ndarray, np.ndarray]], kind: str | None = None) -> Figure:
    """One small panel per model (model -> (2-D coordinates, labels)), points coloured by
    label: a discrete colormap for classes, a continuous one (with a colour bar) for
    regression targets."""
    # matplotlib lazily: see the module docstring
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
        xy, y = maps[model]
        y = np.asarray(y).reshape(-1)
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


def loss_figure(curves: list[Curve]) -> Figure:
    """Pretraining loss against step, one line per run: ``curves`` of (label, steps, loss)."""
    # matplotlib lazily: see the module docstring
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.2), layout="constrained")
    ax = fig.subplots()
    for label, steps, loss in curves:
        ax.plot(steps, loss, label=label, lw=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("pretraining loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def scaling_figure(rows: list[dict[str, Any]]) -> Figure:
    """The scaling study's errors: against n, one line per m, and against m, one line per n
    (error bars: std over seeds; dashed: the fitted law). ``rows`` of m, n, error, std, fitted."""
    # matplotlib lazily: see the module docstring
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8))
    axes = fig.subplots(1, 2)
    for ax, (x_key, line_key, label) in zip(
        axes, (("n", "m", "n (labelled samples)"), ("m", "n", "m (unlabeled samples)")), strict=True
    ):
        for key in sorted({r[line_key] for r in rows}):
            pts = sorted((r[x_key], r["error"], r["std"], r["fitted"]) for r in rows if r[line_key] == key)
            x, e, s, f = map(np.array, zip(*pts, strict=True))
            line = ax.errorbar(x, e, yerr=s, fmt="o", ms=4, capsize=3, label=f"{line_key} = {key}")
            ax.plot(x, f, "--", color=line[0].get_color(), lw=1)
        ax.set_xscale("log")
        ticks = sorted({r[x_key] for r in rows})
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel("test error")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
