"""The label-efficiency protocol, in one place: for a setting (a label fraction, or k shots
per class) and a seed, draw a labelled subset of the train split, carve a validation split
out of it (group-aware when the task has groups), choose the probe's hyper-parameters on that
validation split with the task's primary metric, refit on the whole labelled subset, and
score the test split once. The test split never influences a choice."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from joblib import Parallel, delayed

from unlabeled.bench.metrics import (
    CLASSIFICATION,
    DEFAULT_METRIC,
    REGRESSION,
    check_metric,
    nan_worst,
    score,
    score_all,
)
from unlabeled.bench.probes import ProbeSpec, chosen_by_probe, probe_spec, warm_key
from unlabeled.data.splits import holdout_split, random_subset, shots_subset, stratified_subset

VALIDATION_FRACTION = 0.2
T = TypeVar("T")


@dataclass(frozen=True)
class Setting:
    """How many labels a cell uses: a ``fraction`` of the train split (stratified for
    classification) or ``shots`` labelled samples per class."""

    fraction: float | None = None
    shots: int | None = None

    def __post_init__(self) -> None:
        if (self.fraction is None) == (self.shots is None):
            raise ValueError("a setting is a label fraction or a number of shots, not both")

    @property
    def label(self) -> str:
        return f"{self.shots}-shot" if self.shots is not None else f"{self.fraction * 100:g}%"

    def subset(self, y: np.ndarray, kind: str, seed: int) -> np.ndarray:
        if self.shots is not None:
            if kind == REGRESSION:
                raise ValueError("k-shot settings need classes; a regression task takes label fractions")
            return shots_subset(y, self.shots, seed)
        if kind == REGRESSION:
            return random_subset(len(y), float(self.fraction), seed)
        return stratified_subset(y, float(self.fraction), seed)

    def draws_alike(self, y: np.ndarray, kind: str, seeds: Sequence[int]) -> bool:
        """Whether every seed draws the same labelled samples (all of the train split at 100%,
        or k shots where no class has more than k): the seeds would then differ only in the
        validation carve-out, and a frozen-feature probe is fitted once (see ``_cell_job``)."""
        first = np.sort(self.subset(y, kind, seeds[0]))
        return all(np.array_equal(first, np.sort(self.subset(y, kind, s))) for s in seeds[1:])


@dataclass
class Score:
    value: float  # the primary metric
    param: Any
    n_labels: int
    metrics: dict[str, float] = field(default_factory=dict)


def _predict(model: Any, X: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray | None]:
    pred = model.predict(X)
    proba = model.predict_proba(X) if kind == CLASSIFICATION and hasattr(model, "predict_proba") else None
    return pred, proba


@dataclass(frozen=True)
class ProbeData:
    """What a probe is fitted and scored on: the train split (features, or samples for the
    fine-tuning probes) with its labels and groups, the test split, and the task's kind and
    primary metric."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    kind: str = CLASSIFICATION
    metric: str | None = None  # None: the kind's default metric
    groups: np.ndarray | None = None


def evaluate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    probe: str,
    setting: Setting | float,
    seed: int,
    *,
    kind: str = CLASSIFICATION,
    metric: str | None = None,
    groups: np.ndarray | None = None,
    context: dict[str, Any] | None = None,
) -> Score:
    """Test score of ``probe`` trained on a seeded subset of the train labels.

    The subset's hyper-parameter (and, for the fine-tuning probes, learning rate and epochs)
    is chosen on a validation split carved out of that subset (group-aware when ``groups``
    are given: no group on both sides); the chosen model is refitted on the whole subset and
    the test split is scored once. A self-tuning probe (``ridge``) instead chooses its penalty
    by leave-one-out over the whole subset while fitting, when there are no groups.
    ``context`` goes to raw-input probes (``run``, ``trained``, ``device``)."""
    data = ProbeData(X_train, y_train, X_test, y_test, kind=kind, metric=metric, groups=groups)
    return fit_and_score(data, probe, setting, seed, context)


def fit_and_score(
    data: ProbeData,
    probe: str,
    setting: Setting | float,
    seed: int,
    context: dict[str, Any] | None = None,
    memo: dict[Any, Score] | None = None,
    warm: dict[Any, Any] | None = None,
) -> Score:
    """:func:`evaluate` on a :class:`ProbeData`. ``memo``: scores already made on the same
    ``data`` (the other seeds of one cell), keyed by the labelled subset and the chosen
    hyper-parameter: a frozen-feature probe's refit and test score depend on nothing else, so
    seeds that draw the same subset and choose the same value (every seed at 100% of the
    labels, mostly) refit and search the test split once. ``warm``: where a probe that can
    (``ProbeSpec.warm_starts``, the linear probe) keeps its solutions between the seeds of one
    cell, to start the next fit from; the optimum is the same, found in fewer iterations."""
    setting = setting if isinstance(setting, Setting) else Setting(fraction=float(setting))
    kind = data.kind
    metric = data.metric or DEFAULT_METRIC[kind]
    check_metric(kind, metric)  # before the fits: after them it was a bare KeyError
    spec = probe_spec(probe, kind)
    sub = setting.subset(data.y_train, kind, seed)
    every = len(sub) == len(data.y_train) and bool((sub == np.arange(len(sub))).all())  # no copy of all of it
    labelled = _Labelled(data.X_train if every else data.X_train[sub], data.y_train[sub], kind, metric)
    fit, val = holdout_split(
        len(sub),
        VALIDATION_FRACTION,
        seed,
        None if kind == REGRESSION else labelled.y,
        None if data.groups is None else data.groups[sub],
    )
    if len(val) and len(np.unique(labelled.y[fit])) < 2:
        # whole groups in the carve-out (a patient's samples together) took a class's every label
        # (one shot of it), or two regression labels were split one and one: nothing can be
        # chosen on a fit of one class or one target value (a fine-tuned regressor refuses it),
        # so the defaults are used, as where the labels are too few to carve at all
        fit, val = np.arange(len(sub)), np.arange(0)
    ctx = {**(context or {}), "task": kind, "seed": seed}  # what raw-input probes are given
    pools = None
    if spec.unlabelled:  # the train split, unlabelled; while choosing, without the validation samples
        pools = (np.delete(data.X_train, sub[val], axis=0), data.X_train)
    warm = warm if spec.warm_starts and warm is not None else None
    params = _choose(spec, labelled, (fit, val), data.groups is None, ctx, pools, warm)
    key = None
    if memo is not None and spec.inputs == "features":  # raw-input probes train with the seed
        key = (probe, metric, hashlib.sha256(np.ascontiguousarray(sub).tobytes()).hexdigest(), repr(params))
        if key in memo:
            return memo[key]
    model, chosen = _refit(spec, labelled, params, ctx, pools, warm)
    pred, proba = _predict(model, data.X_test, kind)  # the one use of the test split
    values = score_all(kind, data.y_test, pred, proba, getattr(model, "classes_", None))
    result = Score(values[metric], chosen, len(sub), values)
    if key is not None:
        memo[key] = result
    return result


@dataclass(frozen=True)
class _Labelled:
    """The labelled subset of one fit, and how its predictions are scored."""

    X: np.ndarray
    y: np.ndarray
    kind: str
    metric: str

    def scorer(self, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, classes: np.ndarray) -> float:
        return score(self.kind, self.metric, y, pred, proba, classes if len(classes) else None)


def _choose(
    spec: ProbeSpec,
    data: _Labelled,
    split: tuple[np.ndarray, np.ndarray],
    no_groups: bool,
    context: dict[str, Any],
    pools: tuple[np.ndarray, np.ndarray] | None = None,
    warm: dict[Any, Any] | None = None,
) -> dict[str, Any] | None:
    """The probe's hyper-parameters chosen on ``val`` (fitting on ``fit``); None where the
    probe chooses its own while it is refitted (ridge's leave-one-out). ``pools``: the
    unlabelled samples a semi-supervised probe is given; ``warm``: see :func:`fit_and_score`."""
    Xl, yl = data.X, data.y
    fit, val = split
    if spec.inputs == "raw":
        choosing = {"X_unlabelled": pools[0]} if pools is not None else {}
        return spec.tune(Xl[fit], yl[fit], Xl[val], yl[val], **choosing, **context) if len(val) else {}
    if spec.self_tuning and no_groups:  # the probe chooses from its grid using every label
        return None
    grid = spec.grid_for(Xl)
    best = grid[0]
    if len(val) and len(grid) > 1:
        if spec.grid_scores is not None:
            extra = {} if warm is None else {"warm": warm}
            scores = spec.grid_scores(Xl[fit], yl[fit], Xl[val], yl[val], grid, data.scorer, **extra)
        else:
            scores = []
            for v in grid:
                m = spec.make(**{spec.param: v}).fit(Xl[fit], yl[fit])
                classes = getattr(m, "classes_", np.array([]))
                scores.append(data.scorer(yl[val], *_predict(m, Xl[val], data.kind), classes))
        best = grid[best_of(scores)]
    return {spec.param: best}


def best_of(scores: Sequence[float]) -> int:
    """The position of the best validation score, the first of equals (the grid's first value
    is also its default), a NaN never: ``np.argmax`` returns the first NaN, so a value whose
    fit diverged (a NaN R², say) won the grid. All NaN: the first."""
    return int(np.argmax([nan_worst(float(v)) for v in scores]))


def _refit(
    spec: ProbeSpec,
    data: _Labelled,
    params: dict[str, Any] | None,
    context: dict[str, Any],
    pools: tuple[np.ndarray, np.ndarray] | None = None,
    warm: dict[Any, Any] | None = None,
) -> tuple[Any, Any]:
    """The probe refitted on the whole labelled subset with ``params``: (model, what was
    chosen); a warm-started probe from its validation fit's solution for that value."""
    Xl, yl = data.X, data.y
    if spec.inputs == "raw":
        refit = {"X_unlabelled": pools[1]} if pools is not None else {}
        return spec.make(**(params or {}), **context).fit(Xl, yl, **refit), params
    if params is None:
        model = spec.make().fit(Xl, yl)
        return model, chosen_by_probe(model)
    start = None if warm is None else warm.get(warm_key(params[spec.param], yl))
    extra = {} if start is None else {"init": start}
    return spec.make(**params, **extra).fit(Xl, yl), params[spec.param]


def run_jobs(
    fn: Callable[..., T], jobs: list[tuple[Any, ...]], n_jobs: int, on_done: Callable[[int, T], None]
) -> list[T]:
    """``[fn(*job) for job in jobs]``, over ``n_jobs`` worker processes when more than one;
    ``on_done(i, result)`` as each job finishes (in any order).

    Probe fits are mostly single-threaded (scikit-learn's lbfgs), so processes, not threads,
    use the machine; feature arrays reach the workers memory-mapped, not copied."""
    if n_jobs <= 1 or len(jobs) <= 1:
        out = []
        for i, job in enumerate(jobs):
            out.append(fn(*job))
            on_done(i, out[-1])
        return out
    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    results: dict[int, T] = {}
    tasks = (delayed(_indexed)(i, threads, fn, job) for i, job in enumerate(jobs))
    for i, value in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
        results[i] = value
        on_done(i, value)
    return [results[i] for i in range(len(jobs))]


def _indexed(i: int, threads: int, fn: Callable[..., T], job: tuple[Any, ...]) -> tuple[int, T]:
    torch.set_num_threads(threads)
    return i, fn(*job)
