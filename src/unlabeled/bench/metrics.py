"""Metrics for bench tasks, all from scikit-learn.

Classification: ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``auroc`` (binary, or
macro one-vs-rest over the classes present in the test split). Regression: ``mae``,
``rmse``, ``r2``. Every probe is scored on all the metrics of its task's kind; the task's
primary metric is the one model selection and the unified score use.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
from sklearn import metrics as skm

CLASSIFICATION = "classification"
REGRESSION = "regression"


def _auroc(y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None, classes: np.ndarray) -> float:
    if proba is None or not np.isfinite(proba).all():  # no scores, or scores that rank nothing
        return float("nan")
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")  # undefined with one class in the test split
    if len(classes) == 2:
        return float(skm.roc_auc_score(y == classes[1], proba[:, 1]))
    # macro one-vs-rest over the classes present in the test split that the model knows (a
    # class no training label had has no score column; its samples count as negatives)
    present = present[np.isin(present, classes)]
    cols = np.searchsorted(classes, present)
    return float(np.mean([skm.roc_auc_score(y == c, proba[:, j]) for c, j in zip(present, cols, strict=True)]))


Metric = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray], float]

CLASSIFICATION_METRICS: dict[str, Metric] = {
    "accuracy": lambda y, p, _, __: float(skm.accuracy_score(y, p)),
    "balanced_accuracy": lambda y, p, _, __: float(skm.balanced_accuracy_score(y, p)),
    # over the classes the test split holds, as the notes say (a train-only class predicted added an F1 of 0)
    "macro_f1": lambda y, p, _, __: float(skm.f1_score(y, p, labels=np.unique(y), average="macro", zero_division=0)),
    "auroc": _auroc,
}
REGRESSION_METRICS: dict[str, Metric] = {
    "mae": lambda y, p, _, __: float(skm.mean_absolute_error(y, p)),
    "rmse": lambda y, p, _, __: float(np.sqrt(skm.mean_squared_error(y, p))),
    "r2": lambda y, p, _, __: float(skm.r2_score(y, p)),
}
LOWER_IS_BETTER = {"mae", "rmse"}
DEFAULT_METRIC = {CLASSIFICATION: "accuracy", REGRESSION: "mae"}


def metrics_for(kind: str) -> dict[str, Metric]:
    return CLASSIFICATION_METRICS if kind == CLASSIFICATION else REGRESSION_METRICS


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


def check_metric(kind: str, metric: str) -> None:
    if metric not in metrics_for(kind):
        raise ValueError(f"metric {metric!r} is not a {kind} metric; choose from {', '.join(metrics_for(kind))}")


def score_all(
    kind: str, y: np.ndarray, pred: np.ndarray, proba: np.ndarray | None = None, classes: np.ndarray | None = None
) -> dict[str, float]:
    """Every metric of ``kind`` for predictions ``pred`` (and class probabilities ``proba``,
    columns in the order of ``classes``, for AUROC)."""
    cls = np.unique(y) if classes is None else np.asarray(classes)
    with warnings.catch_warnings():
        # scikit-learn's warnings for a metric it can score only in part (a class predicted that
        # the test split lacks, one class in it): the score says what it can (NaN where it is
        # undefined) and the bench's notes say why; the warnings flooded the console
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return {name: fn(y, pred, proba, cls) for name, fn in metrics_for(kind).items()}


def nan_worst(value: float) -> float:
    """A validation score to compare, NaN (a fit that diverged, a metric undefined on the
    split) made the worst: ``x > nan`` is False, so a NaN kept first was never replaced."""
    return -math.inf if math.isnan(value) else value


def score(
    kind: str,
    metric: str,
    y: np.ndarray,
    pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: np.ndarray | None = None,
) -> float:
    """One metric, signed so that larger is better (for choosing hyper-parameters)."""
    cls = np.unique(y) if classes is None else np.asarray(classes)
    value = metrics_for(kind)[metric](y, pred, proba, cls)
    return value if higher_is_better(metric) else -value
