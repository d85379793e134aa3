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

import contextlib
import inspect
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import nnls

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import check_count, check_positive
from unlabeled.bench.benchmark import bench
from unlabeled.bench.figures import png_base64, scaling_figure
from unlabeled.bench.pages import render_page
from unlabeled.bench.probes import PROBES
from unlabeled.bench.tasks import Task, make_task
from unlabeled.data.collection import (
    Collection,
    derive_collection,
    derived_fingerprint,
    holding_collection,
    open_collection,
)
from unlabeled.objectives import check_method_options, check_pretraining_method
from unlabeled.runs import Run, open_run, same_samples
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.pretrain import pretrain
from unlabeled.train.trainer import one_budget, resume_hint


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
    """Non-negative least squares fit of ``err ≈ e_inf + a/m + b/n`` (scipy's nnls), on the
    finite rows; NaN throughout where fewer than three are left (three coefficients: nnls on
    no rows returned uninitialised numbers with R² 1)."""
    keep = np.isfinite(err) & np.isfinite(m) & np.isfinite(n)
    if keep.sum() < 3:
        return dict.fromkeys(("e_inf", "a", "b", "r2"), float("nan"))
    m, n, err = m[keep], n[keep], err[keep]
    A = np.stack([np.ones_like(m, dtype=float), 1.0 / m, 1.0 / n], axis=1)
    coef, _ = nnls(A, err.astype(float))
    pred = A @ coef
    ss = float(((err - err.mean()) ** 2).sum())
    r2 = 1.0 - float(((err - pred) ** 2).sum()) / ss if ss > 0 else 1.0
    return {"e_inf": float(coef[0]), "a": float(coef[1]), "b": float(coef[2]), "r2": r2}


@dataclass(frozen=True)
class ScalingRequest:
    """The options of :func:`scaling`, with the collections opened; checked on construction."""

    pool: Collection
    task: Collection
    out: Path
    pool_sizes: tuple[float, ...] = (0.1, 0.3, 1.0)
    fractions: tuple[float, ...] = (0.01, 0.1)
    probe: str = "linear"
    seeds: int = 3
    method: str = "simclr"
    epochs: float | None = None
    minutes: float | None = None
    batch_size: int = 128
    seed: int = 0
    device: str = "auto"
    pretrain_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._check_before_writing()
        for f in (*self.pool_sizes, *self.fractions):
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 < f <= 1:
                raise UnlabeledError(f"pool sizes and label fractions must be in (0, 1], got {f}")
        if self.epochs is None and self.minutes is None:
            raise UnlabeledError("give the pretraining budget: --epochs (passes over the whole pool) or --minutes")
        one_budget(self.epochs, self.minutes)
        # as the user gave them (pretrain saw the epochs scaled to a subset: "-9.986" for -1)
        for flag, value in (("--epochs", self.epochs), ("--minutes", self.minutes)):
            if value is not None:
                check_positive(value, flag)
        check_count(self.batch_size, "--batch-size", 2)
        check_count(self.seeds, "--seeds", 1)
        for flag, values in (("--pool-sizes", self.pool_sizes), ("--fractions", self.fractions)):
            if len(set(values)) < 2:  # the law's a/m and b/n terms need two of each to be fitted
                raise UnlabeledError(
                    f"{flag} needs at least two values to fit error ≈ e + a/m + b/n; got {list(values)}"
                )
            if len(set(values)) < len(values):  # bench refused it, after the first pool had trained
                raise UnlabeledError(f"{flag} lists a value more than once: {list(values)}")

    def _check_before_writing(self) -> None:
        """What would otherwise fail after pools were derived or a run trained: where the study
        writes, the probe, the method and the options passed on to pretrain."""
        held = holding_collection(self.out)
        if held is not None:
            raise UnlabeledError(f"{self.out} lies inside the collection {held}; write the study elsewhere")
        if (self.out / "config.json").is_file():
            raise UnlabeledError(f"{self.out} is a run folder; write the study elsewhere")
        for flag, values in (("pool_sizes", self.pool_sizes), ("fractions", self.fractions)):
            if isinstance(values, str) or any(isinstance(v, str) for v in values):
                raise UnlabeledError(f"{flag} must be a list of numbers, got {values!r}")
        if self.probe not in PROBES:
            raise UnlabeledError(f"unknown probe {self.probe!r}; choose from {', '.join(PROBES)}")
        check_pretraining_method(self.method)
        own = {"data", "out", "resume", "overwrite", "positions", "method", "seed", "device", "batch_size"}
        taken = set(inspect.signature(pretrain).parameters) - own - {"minutes", "epochs"}  # scaling's to set
        if unknown := sorted(set(self.pretrain_options) - taken):
            shown = ", ".join(sorted(taken))
            raise UnlabeledError(f"scaling passes no option {', '.join(unknown)} to pretrain; it passes on {shown}")
        check_method_options(self.method, dict(self.pretrain_options.get("method_options") or {}))

    def settings(self) -> dict[str, Any]:
        """What ``scaling.json`` records of how the study ran."""
        return {
            "pool": str(self.pool.path),
            "task": str(self.task.path),
            "pool_sizes": list(self.pool_sizes),
            "fractions": list(self.fractions),
            "probe": self.probe,
            "seeds": self.seeds,
            "method": self.method,
            "epochs": self.epochs,
            "minutes": self.minutes,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


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
    request = ScalingRequest(
        pool=open_collection(pool),
        task=open_collection(task),
        out=Path(out),
        pool_sizes=tuple(pool_sizes),
        fractions=tuple(fractions),
        probe=probe,
        seeds=seeds,
        method=method,
        epochs=epochs,
        minutes=minutes,
        batch_size=batch_size,
        seed=seed,
        device=device,
        pretrain_options=dict(pretrain_options),
    )
    return run_scaling(request)


def run_scaling(request: ScalingRequest) -> ScalingResult:
    """:func:`scaling` on a checked request."""
    # the task checked before any pretraining (hours, on a real budget) is spent on it
    if request.pool.modality != request.task.modality:
        raise UnlabeledError(
            f"pool {request.pool.path} holds {request.pool.modality} samples; task {request.task.path} "
            f"has {request.task.modality} samples: the encoders pretrained on one cannot be probed on the other"
        )
    task = make_task(request.task)  # its labels and splits (one class, no test split) are refused here
    candidates = pool_without_test(request.pool, task)
    smallest = max(1, int(round(min(request.pool_sizes) * len(candidates))))
    if smallest < request.batch_size:
        raise UnlabeledError(
            f"the smallest pool ({smallest} samples) is under one batch of {request.batch_size}; "
            "use larger --pool-sizes or a smaller --batch-size (the same for every m)"
        )
    order = np.random.default_rng(request.seed).permutation(candidates)  # nested subsets: each m holds the smaller
    rows: list[dict[str, Any]] = []
    runs: list[Path] = []
    for size in sorted(request.pool_sizes):
        m = max(1, int(round(size * len(candidates))))
        with resume_hint("run the same scaling command again to go on"):  # scaling has no --resume
            run = _pretrained(request, order[:m], len(candidates), size)
        runs.append(run.path)
        info(f"scaling: m = {m} pretrained; probing")
        rows += _probe_rows(request, run, m, size)
    if not rows:  # every cell left out (a note says why): no law to fit, nothing to report
        raise UnlabeledError(f"scaling: the {request.probe} probe scored no setting of {request.task.path}")
    fit = fit_law(*(np.array([r[k] for r in rows], dtype=float) for k in ("m", "n", "error")))
    for r in rows:
        r["fitted"] = fit["e_inf"] + fit["a"] / r["m"] + fit["b"] / r["n"]
    settings = request.settings()
    result = ScalingResult(rows, fit, settings, runs=runs)
    result.json_path = request.out / "scaling.json"
    ckpt.atomic_write_json(result.json_path, {"settings": settings, "fit": fit, "rows": rows})
    result.report_path = request.out / "scaling.html"
    ckpt.atomic_write_text(result.report_path, _render(result))
    info(f"wrote {result.json_path} and {result.report_path}")
    return result


def pool_without_test(pool: Collection, task: Task) -> np.ndarray:
    """Positions of ``pool``'s samples an encoder may pretrain on: neither in the pool's own
    test split nor among the task's test samples (by position where the pool is the task's
    collection, by content otherwise). A pool without a split column, the task's own
    collection whose test split the bench carves, held every test sample: the probes were then
    scored on samples their encoder had pretrained on."""
    candidates = pool.indices(exclude="test")
    keep = ~same_samples(task.collection, task.test, pool, candidates)
    if not keep.all():
        info(f"scaling: {int((~keep).sum())} pool samples are the task's test samples; none is pretrained on")
    return candidates[keep]


def subset_epochs(epochs: float, whole: int, m: int, batch: int) -> float:
    """Passes over a subset of ``m`` samples that make the steps ``epochs`` passes over the
    whole pool of ``whole`` make, batches of ``batch`` (whole batches only): scaling by
    ``whole / m`` alone left a remainder batch per pass uncounted, so a subset of 20 in
    batches of 16 trained 10 steps where the pool of 200 trained 12."""
    steps = max(1, round(epochs * (whole // batch)))
    return steps / max(1, m // batch)


def _options_file(run_dir: Path) -> Path:
    """Where the study keeps the pretraining options a run was asked for (beside its folder)."""
    return run_dir.parent / f"{run_dir.name}.options.json"


def _as_json(options: dict[str, Any]) -> Any:
    """``options`` as JSON reads them back (tuples as lists), to compare with a recorded copy."""
    return json.loads(json.dumps(options, default=str))


def _same_recipe(run: Run, request: ScalingRequest, sub: Collection, epochs: float) -> bool:
    """Whether a run found in the study was pretrained on ``sub`` as ``request`` asks (method,
    its options, batch, seed, budget): one made with other settings is trained again."""
    c, train = run.config, run.config["train"]
    budget = (
        train.get("minutes") == request.minutes
        if request.minutes is not None
        else train.get("minutes") is None and math.isclose(train.get("epochs") or 0, epochs)
    )
    # the options as asked, beside the run: pretrain records them in several places (or
    # resolved: precision "auto"), and looking for each in the method's record retrained every run
    asked = _options_file(run.path)
    options = (json.loads(asked.read_text()) if asked.exists() else {}) == _as_json(request.pretrain_options)
    return (
        c["data"]["fingerprint"] == sub.fingerprint()
        and c["method"]["name"] == request.method
        and options
        and (train["batch_size"], train["seed"]) == (request.batch_size, request.seed)
        and budget
    )


def _pretrained(request: ScalingRequest, subset: np.ndarray, n_candidates: int, size: float) -> Run:
    """The encoder pretrained on the pool's first ``len(subset)`` shuffled samples: reused
    when finished, resumed when interrupted, else trained."""
    pool, m = request.pool, len(subset)
    sub_dir = request.out / "pools" / f"m{m}"
    sub = None
    if (sub_dir / "collection.json").is_file():
        with contextlib.suppress(UnlabeledError):  # the pool was imported again since: derived anew below
            sub = open_collection(sub_dir)
    if sub is None or sub.fingerprint() != derived_fingerprint(pool, subset):
        meta = {"name": f"{pool.name}-m{m}", "scaling_subset": size}
        sub = derive_collection(pool, subset, sub_dir, meta, overwrite=True)
    run_dir = request.out / "runs" / f"m{m}"
    state = run_dir / ckpt.STATE_FILE
    epochs = None if request.epochs is None else subset_epochs(request.epochs, n_candidates, m, request.batch_size)
    same = state.is_file() and _same_recipe(open_run(run_dir), request, sub, epochs or 0.0)
    if same and open_run(run_dir).finished:
        return open_run(run_dir)
    if same:
        return pretrain(sub, run_dir, resume=True, device=request.device)
    budget = {"minutes": request.minutes} if request.minutes is not None else {"epochs": epochs}
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_json(_options_file(run_dir), _as_json(request.pretrain_options))
    return pretrain(
        sub,
        run_dir,
        method=request.method,
        seed=request.seed,
        device=request.device,
        overwrite=True,
        batch_size=request.batch_size,
        **budget,
        **request.pretrain_options,
    )


def _probe_rows(request: ScalingRequest, run: Run, m: int, size: float) -> list[dict[str, Any]]:
    """The run's probe scores at each label fraction, as rows of m, n and the error."""
    res = bench(
        run,
        request.task,
        fractions=request.fractions,
        seeds=request.seeds,
        probes=[request.probe],
        baselines=(),
        out=run.path,
        device=request.device,
    )
    return [
        {
            "m": m,
            "pool_fraction": size,
            "n": r["n_labels"],
            "fraction": r["fraction"],
            "metric": r["metric"],
            "mean": r["mean"],
            "std": r["std"],
            "error": 1.0 - r["mean"] if r["higher_is_better"] else r["mean"],
        }
        for r in res.rows
    ]


def _render(result: ScalingResult) -> str:
    rows = [
        {k: f"{r[k]:.4f}" for k in ("mean", "std", "error", "fitted")} | {"m": r["m"], "n": r["n"]} for r in result.rows
    ]
    return render_page(
        "scaling.html.j2",
        settings=result.settings,
        fit=result.fit,
        png=png_base64(scaling_figure(result.rows)),
        rows=rows,
    )
