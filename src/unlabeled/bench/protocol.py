"""The label-fraction protocol, in one place: for a fraction and a seed, draw a stratified
labelled subset of the train split, carve a validation split out of it, choose the probe's
hyper-parameter on that validation split, refit on the whole labelled subset, and score the
test split once. The test split never influences a choice."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from sklearn.metrics import accuracy_score

from unlabeled.bench.probes import PROBES
from unlabeled.data.splits import stratified_split, stratified_subset

VALIDATION_FRACTION = 0.2
T = TypeVar("T")


@dataclass
class Score:
    value: float
    param: Any
    n_labels: int


def evaluate(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    probe: str,
    fraction: float,
    seed: int,
) -> Score:
    """Test accuracy of ``probe`` trained on ``fraction`` of the train labels (seeded)."""
    spec = PROBES[probe]
    sub = stratified_subset(y_train, fraction, seed)
    Xl, yl = X_train[sub], y_train[sub]
    fit, val = stratified_split(yl, VALIDATION_FRACTION, seed)
    best = spec.grid[0]
    if len(val) and len(spec.grid) > 1:
        if spec.grid_scores is not None:
            accs = spec.grid_scores(Xl[fit], yl[fit], Xl[val], yl[val], spec.grid)
        else:
            accs = [
                accuracy_score(yl[val], spec.make(**{spec.param: v}).fit(Xl[fit], yl[fit]).predict(Xl[val]))
                for v in spec.grid
            ]
        best = spec.grid[int(np.argmax(accs))]  # the first of equals: grids go from simple to complex
    model = spec.make(**{spec.param: best}).fit(Xl, yl)
    return Score(float(accuracy_score(y_test, model.predict(X_test))), best, len(sub))


def run_jobs(fn: Callable[..., T], jobs: list[tuple[Any, ...]], n_jobs: int, on_done: Callable[[], None]) -> list[T]:
    """``[fn(*job) for job in jobs]``, over ``n_jobs`` worker processes when more than one.

    Probe fits are mostly single-threaded (scikit-learn's lbfgs), so processes, not threads,
    use the machine; feature arrays reach the workers memory-mapped, not copied."""
    if n_jobs <= 1 or len(jobs) <= 1:
        out = []
        for job in jobs:
            out.append(fn(*job))
            on_done()
        return out
    from joblib import Parallel, delayed

    threads = max(1, (os.cpu_count() or 1) // n_jobs)
    results: dict[int, T] = {}
    tasks = (delayed(_indexed)(i, threads, fn, job) for i, job in enumerate(jobs))
    for i, value in Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks):
        results[i] = value
        on_done()
    return [results[i] for i in range(len(jobs))]


def _indexed(i: int, threads: int, fn: Callable[..., T], job: tuple[Any, ...]) -> tuple[int, T]:
    import torch

    torch.set_num_threads(threads)
    return i, fn(*job)
