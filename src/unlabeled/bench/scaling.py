"""``scaling``: how the error falls with unlabeled count m and labelled count n.

"On the Provable Advantage of Unsupervised Pretraining" (Ge et al., ICLR 2024) bounds the
excess risk of pretraining on m unlabeled samples then fitting on n labelled ones by
O(C_Φ/m + C_Ψ/n), against O(C_{Φ∘Ψ}/n) without pretraining. This study measures it: for
each pool size m (random subsets of the pool, without its test split) an encoder is
pretrained with the same recipe, then probed at each label fraction n (the bench protocol:
validation-chosen hyper-parameters, test split scored once, mean ± std over seeds). The
test errors are fitted by non-negative least squares to ``e(m, n) = e∞ + a/m + b/n``.

    result = scaling("data/pool", "data/task", pool_sizes=[0.1, 0.3, 1], fractions=[0.01, 0.1])
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled.data.collection import Collection, derive_collection, open_collection
from unlabeled.train import checkpoint as ckpt


@dataclass
class ScalingResult:
    """One row per (pool size, label fraction): m, n, the probe's metric (mean ± std), the
    error, and the fitted law."""

    rows: list[dict[str, Any]]
    fit: dict[str, float]
    settings: dict[str, Any]
    json_path: Path | None = None
    report_path: Path | None = None
    runs: list[Path] = field(default_factory=list)

    def table(self) -> str:
        lines = [f"{'m (unlabeled)':>14}{'n (labels)':>12}{'metric':>18}{'error':>10}{'fitted':>10}"]
        for r in self.rows:
            lines.append(
                f"{r['m']:>14}{r['n']:>12}{r['mean']:>11.4f} ± {r['std']:.4f}{r['error']:>10.4f}{r['fitted']:>10.4f}"
            )
        f = self.fit
        lines.append(f"error ≈ {f['e_inf']:.4f} + {f['a']:.1f}/m + {f['b']:.2f}/n   (R² {f['r2']:.3f})")
        return "\n".join(lines)


def fit_law(m: np.ndarray, n: np.ndarray, err: np.ndarray) -> dict[str, float]:
    """Non-negative least squares fit of ``err ≈ e_inf + a/m + b/n`` (scipy's nnls)."""
    from scipy.optimize import nnls

    A = np.stack([np.ones_like(m, dtype=float), 1.0 / m, 1.0 / n], axis=1)
    coef, _ = nnls(A, err.astype(float))
    pred = A @ coef
    ss = float(((err - err.mean()) ** 2).sum())
    r2 = 1.0 - float(((err - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    return {"e_inf": float(coef[0]), "a": float(coef[1]), "b": float(coef[2]), "r2": r2}


def scaling(
    pool: Collection | str | os.PathLike[str],
    task: Collection | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    pool_sizes: Sequence[float] = (0.1, 0.3, 1.0),
    fractions: Sequence[float] = (0.01, 0.1),
    probe: str = "linear",
    seeds: int = 3,
    method: str = "simclr",
    epochs: float | None = None,
    minutes: float | None = None,
    batch_size: int = 128,
    seed: int = 0,
    device: str = "auto",
    **pretrain_options: Any,
) -> ScalingResult:
    """Pretrain on random ``pool_sizes`` fractions of ``pool`` and probe each encoder on
    ``task`` at label ``fractions``; writes runs, ``scaling.json`` and ``scaling.html`` to
    ``out``. The budget is ``minutes`` of wall time per run (the same compute for every m), or
    ``epochs`` counted in passes over the *whole* pool, so that every m gets the same number
    of steps. Finished runs in ``out`` are reused (an interrupted study resumes)."""
    import unlabeled as ul
    from unlabeled.bench.benchmark import bench

    pool_col, task_col = open_collection(pool), open_collection(task)
    out = Path(out)
    for f in (*pool_sizes, *fractions):
        if not 0 < f <= 1:
            raise UnlabeledError(f"pool sizes and label fractions must be in (0, 1], got {f}")
    if epochs is None and minutes is None:
        raise UnlabeledError("give the pretraining budget: --epochs (passes over the whole pool) or --minutes")
    candidates = pool_col.indices(exclude="test")
    smallest = max(1, int(round(min(pool_sizes) * len(candidates))))
    if smallest < batch_size:
        raise UnlabeledError(
            f"the smallest pool ({smallest} samples) is under one batch of {batch_size}; "
            "use larger --pool-sizes or a smaller --batch-size (the same for every m)"
        )
    rng = np.random.default_rng(seed)
    order = rng.permutation(candidates)  # nested subsets: each m contains the smaller ones
    rows: list[dict[str, Any]] = []
    runs: list[Path] = []
    for size in sorted(pool_sizes):
        m = max(1, int(round(size * len(candidates))))
        sub_dir = out / "pools" / f"m{m}"
        sub = (
            open_collection(sub_dir)
            if (sub_dir / "collection.json").is_file()
            else derive_collection(
                pool_col, order[:m], sub_dir, {"name": f"{pool_col.name}-m{m}", "scaling_subset": size}
            )
        )
        run_dir = out / "runs" / f"m{m}"
        state = run_dir / ckpt.STATE_FILE
        if state.is_file() and ul.open_run(run_dir).finished:
            run = ul.open_run(run_dir)
        elif state.is_file():
            run = ul.pretrain(sub, run_dir, resume=True, device=device)
        else:
            budget = {"minutes": minutes} if minutes is not None else {"epochs": float(epochs) * len(candidates) / m}
            run = ul.pretrain(
                sub,
                run_dir,
                method=method,
                seed=seed,
                device=device,
                overwrite=True,
                batch_size=batch_size,
                **budget,
                **pretrain_options,
            )
        runs.append(run.path)
        info(f"scaling: m = {m} pretrained; probing")
        res = bench(
            run, task_col, fractions=fractions, seeds=seeds, probes=[probe], baselines=(), out=run.path, device=device
        )
        for r in res.rows:
            err = 1.0 - r["mean"] if r["higher_is_better"] else r["mean"]
            rows.append(
                {
                    "m": m,
                    "pool_fraction": size,
                    "n": r["n_labels"],
                    "fraction": r["fraction"],
                    "metric": r["metric"],
                    "mean": r["mean"],
                    "std": r["std"],
                    "error": err,
                }
            )
    fit = fit_law(*(np.array([r[k] for r in rows], dtype=float) for k in ("m", "n", "error")))
    for r in rows:
        r["fitted"] = fit["e_inf"] + fit["a"] / r["m"] + fit["b"] / r["n"]
    settings = {
        "pool": str(pool_col.path),
        "task": str(task_col.path),
        "pool_sizes": list(pool_sizes),
        "fractions": list(fractions),
        "probe": probe,
        "seeds": seeds,
        "method": method,
        "epochs": epochs,
        "minutes": minutes,
        "batch_size": batch_size,
        "seed": seed,
    }
    result = ScalingResult(rows, fit, settings, runs=runs)
    result.json_path = out / "scaling.json"
    ckpt.atomic_write_json(result.json_path, {"settings": settings, "fit": fit, "rows": rows})
    result.report_path = out / "scaling.html"
    ckpt.atomic_write_text(result.report_path, _render(result))
    info(f"wrote {result.json_path} and {result.report_path}")
    return result


def _render(result: ScalingResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    # error against n, one line per m; and against m, one line per n (dashed: the fitted law)
    for ax, (x_key, line_key, label) in zip(
        axes, (("n", "m", "n (labelled samples)"), ("m", "n", "m (unlabeled samples)")), strict=True
    ):
        for key in sorted({r[line_key] for r in result.rows}):
            pts = sorted((r[x_key], r["error"], r["std"], r["fitted"]) for r in result.rows if r[line_key] == key)
            x, e, s, f = map(np.array, zip(*pts, strict=True))
            line = ax.errorbar(x, e, yerr=s, fmt="o", ms=4, capsize=3, label=f"{line_key} = {key}")
            ax.plot(x, f, "--", color=line[0].get_color(), lw=1)
        ax.set_xscale("log")
        ticks = sorted({r[x_key] for r in result.rows})
        ax.set_xticks(ticks, [f"{t:,}" for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel(label)
        ax.set_ylabel("test error")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    f = result.fit
    body = "".join(
        f"<tr><td>{r['m']}</td><td>{r['n']}</td><td>{r['mean']:.4f} ± {r['std']:.4f}</td>"
        f"<td>{r['error']:.4f}</td><td>{r['fitted']:.4f}</td></tr>"
        for r in result.rows
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>unlabeled scaling</title></head><body>"
        f"<h1>Scaling with unlabeled (m) and labelled (n) samples</h1><p>pool "
        f"<code>{html.escape(result.settings['pool'])}</code>, "
        f"task <code>{html.escape(result.settings['task'])}</code>,"
        f" {html.escape(result.settings['probe'])} probe, {result.settings['seeds']} seed(s).</p>"
        f"<p>Fit (Ge et al. 2024): error ≈ {f['e_inf']:.4f} + {f['a']:.1f}/m + {f['b']:.2f}/n, R² {f['r2']:.3f}.</p>"
        f"<img id='scaling' alt='error against n per m' src='data:image/png;base64,"
        f"{base64.b64encode(buf.getvalue()).decode()}'>"
        "<table id='scaling-table'><thead><tr><th>m</th><th>n</th><th>metric</th><th>error</th><th>fitted</th>"
        f"</tr></thead><tbody>{body}</tbody></table></body></html>"
    )
