"""The bench report: one self-contained HTML file (plots embedded as base64 PNG, no
external assets) with the label-efficiency curves, the pretraining loss of each run, and the
results table."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from unlabeled.runs import open_run
from unlabeled.train import checkpoint as ckpt

if TYPE_CHECKING:
    from unlabeled.bench.benchmark import BenchResult

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3rem 0.7rem; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tr.baseline td { color: #777; }
img { max-width: 100%; }
code { background: #f4f4f4; padding: 0.1rem 0.3rem; }
"""


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def curves_figure(rows: list[dict[str, Any]]) -> Any:
    """Metric against label fraction, one panel per probe, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    probes = list(dict.fromkeys(r["probe"] for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(1, len(probes), figsize=(4.2 * len(probes), 3.4), squeeze=False)
    for ax, probe in zip(axes[0], probes, strict=True):
        for model in models:
            pts = sorted((r["fraction"], r["mean"], r["std"]) for r in rows
                         if r["probe"] == probe and r["model"] == model)  # fmt: skip
            if not pts:
                continue
            f, m, s = map(np.array, zip(*pts, strict=True))
            style = "--" if model in ("raw", "random-init") or model.startswith("random-init:") else "-"
            ax.errorbar(f * 100, m, yerr=s, fmt=style + "o", ms=4, capsize=3, label=model)
        ax.set_xscale("log")
        ticks = sorted({r["fraction"] * 100 for r in rows})
        ax.set_xticks(ticks, [f"{t:g}%" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("labels used (% of train split)")
        ax.set_ylabel(rows[0]["metric"])
        ax.set_title(f"{probe} probe")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def loss_figure(runs: list[str]) -> Any | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    drawn = False
    for path in runs:
        m = open_run(path).metrics()
        if m:
            ax.plot([r["step"] for r in m], [r["loss"] for r in m], label=Path(path).name)
            drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("pretraining loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def render(result: BenchResult) -> str:
    import matplotlib.pyplot as plt

    rows, s = result.rows, result.settings
    fractions = sorted({r["fraction"] for r in rows})
    curves = curves_figure(rows)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>unlabeled bench: {html.escape(rows[0]['task'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>Few-label benchmark on <code>{html.escape(rows[0]['task'])}</code></h1>",
        f"<p>{s['train']} train / {s['test']} test samples ({html.escape(s['split'])}); "
        f"{s['seeds']} seed(s) per cell; hyper-parameters chosen on a validation split of the "
        "labelled subset; the test split is scored once per final model.</p>",
        "<h2>Label efficiency</h2>",
        f"<img id='curves' alt='label-efficiency curves' src='data:image/png;base64,{_png(curves)}'>",
    ]
    plt.close(curves)
    loss = loss_figure(s["runs"])
    if loss is not None:
        parts += ["<h2>Pretraining</h2>",
                  f"<img id='loss' alt='pretraining loss' src='data:image/png;base64,{_png(loss)}'>"]  # fmt: skip
        plt.close(loss)
    parts += [
        f"<h2>Results ({html.escape(rows[0]['metric'])}, mean ± std)</h2>",
        "<table id='results'><thead><tr><th>model</th><th>probe</th>",
        *[f"<th>{f * 100:g}% labels</th>" for f in fractions],
        "</tr></thead><tbody>",
    ]
    for model, probe in dict.fromkeys((r["model"], r["probe"]) for r in rows):
        base = model in ("raw", "random-init") or model.startswith("random-init:")
        parts.append(f"<tr class='{'baseline' if base else 'model'}'><td>{html.escape(model)}</td>"
                     f"<td>{html.escape(probe)}</td>")  # fmt: skip
        for f in fractions:
            r = next((r for r in rows if r["model"] == model and r["probe"] == probe and r["fraction"] == f), None)
            parts.append("<td>-</td>" if r is None else f"<td>{r['mean']:.4f} ± {r['std']:.4f}</td>")
        parts.append("</tr>")
    parts += ["</tbody></table>", "</body></html>"]
    return "\n".join(parts)


def write_report(result: BenchResult, path: Path) -> Path:
    ckpt.atomic_write_text(path, render(result))
    return path
