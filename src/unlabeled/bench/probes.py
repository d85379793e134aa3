"""Frozen-feature probes with the scikit-learn estimator API, and the grids their
hyper-parameter is chosen from.

- ``linear``: standardised features + multinomial logistic regression (scikit-learn).
- ``nb``: standardised features + Gaussian naive Bayes (scikit-learn); with few labels it
  approaches its asymptotic error faster than logistic regression (Ng & Jordan 2001, "On
  Discriminative vs. Generative Classifiers").
- ``knn``: cosine similarity, vote weighted by exp(similarity / temperature), as in
  Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination" and used by DINO and solo-learn. Written here because scikit-learn's
  KNeighborsClassifier has no temperature-weighted vote.

    probe = make_probe("linear", C=1.0).fit(X, y)
    probe.predict(X_test)
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

KNN_TEMPERATURE = 0.07


class KNNProbe(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier on cosine similarity with a temperature-weighted vote."""

    def __init__(self, k: int = 20, temperature: float = KNN_TEMPERATURE) -> None:
        self.k = k
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNProbe:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.X_ = np.asarray(X, dtype=np.float32)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        sims, idx = neighbours(X, self.X_, self.k)
        return knn_vote(sims, self.y_[idx], len(self.classes_), self.temperature)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def neighbours(X: np.ndarray, ref: np.ndarray, k: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and indices of the ``k`` most similar rows of ``ref`` for each
    row of ``X``, most similar first (torch: its matmul and top-k are several times faster
    than numpy's argpartition on the CPU)."""
    q, r = (torch.nn.functional.normalize(_tensor(a), dim=1) for a in (X, ref))
    k = min(k, len(r))
    sims, idx = zip(*(torch.topk(q[s : s + chunk] @ r.T, k, dim=1) for s in range(0, len(q), chunk)), strict=True)
    return torch.cat(sims).numpy(), torch.cat(idx).numpy()


def _tensor(a: np.ndarray) -> torch.Tensor:
    """A float32 tensor sharing memory with ``a`` (read-only memory maps included: the
    tensor is only read, so torch's warning about non-writable arrays does not apply)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(np.asarray(a, dtype=np.float32))


def knn_vote(sims: np.ndarray, labels: np.ndarray, n_classes: int, temperature: float) -> np.ndarray:
    """Class probabilities from neighbours' similarities and labels (both (n, k))."""
    w = np.exp((sims - sims[:, :1]) / temperature)  # shifted by the row maximum: no overflow
    out = np.zeros((len(sims), n_classes))
    np.add.at(out, (np.arange(len(sims))[:, None], labels), w)
    return out / out.sum(axis=1, keepdims=True)


def knn_grid_scores(
    X_fit: np.ndarray, y_fit: np.ndarray, X_val: np.ndarray, y_val: np.ndarray, grid: tuple[float, ...]
) -> list[float]:
    """Validation accuracy for every k of the grid from one neighbour search."""
    classes, codes = np.unique(y_fit, return_inverse=True)
    sims, idx = neighbours(X_val, X_fit, int(max(grid)))
    scores = []
    for k in map(int, grid):
        proba = knn_vote(sims[:, :k], codes[idx[:, :k]], len(classes), KNN_TEMPERATURE)
        scores.append(float((classes[proba.argmax(1)] == y_val).mean()))
    return scores


def _linear(C: float = 1.0) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500, tol=1e-3))


def _nb(var_smoothing: float = 1e-9) -> Pipeline:
    return make_pipeline(StandardScaler(), GaussianNB(var_smoothing=var_smoothing))


@dataclass(frozen=True)
class ProbeSpec:
    """A probe: how to make one from its hyper-parameter, and the grid to choose it from."""

    name: str
    make: Callable[..., Any]
    param: str
    grid: tuple[float, ...]
    grid_scores: Callable[..., list[float]] | None = None  # validation accuracy of the whole grid at once


PROBES: dict[str, ProbeSpec] = {
    p.name: p
    for p in (
        ProbeSpec("linear", _linear, "C", (0.01, 0.1, 1.0)),
        ProbeSpec("knn", KNNProbe, "k", (5, 20, 50), knn_grid_scores),
        ProbeSpec("nb", _nb, "var_smoothing", (1e-9, 1e-3, 1e-1)),
    )
}


def make_probe(name: str, **params: Any) -> Any:
    """An unfitted probe by name (``linear``, ``knn``, ``nb``)."""
    if name not in PROBES:
        raise ValueError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    return PROBES[name].make(**params)
