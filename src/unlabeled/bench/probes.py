"""Frozen-feature probes with the scikit-learn estimator API, and the grids their
hyper-parameter is chosen from.

- ``linear``: standardised features + multinomial logistic regression (scikit-learn's objective,
  fitted for every C of the grid at once, :mod:`unlabeled.bench.logistic`).
- ``ridge``: standardised features + ridge classification, its penalty chosen by efficient
  leave-one-out on the labels themselves (scikit-learn's ``RidgeClassifierCV``): the classifier
  of ROCKET and MiniRocket (Dempster et al. 2020, 2021), so features compare under the same
  probe as theirs; with tens of labels it also uses every label to choose its penalty. On a
  task with groups the protocol chooses the penalty on its group-aware split instead.
- ``nb``: standardised features + Gaussian naive Bayes (scikit-learn); with few labels it
  approaches its asymptotic error faster than logistic regression (Ng & Jordan 2001, "On
  Discriminative vs. Generative Classifiers").
- ``knn``: cosine similarity, vote weighted by exp(similarity / temperature), as in
  Wu et al. 2018, "Unsupervised Feature Learning via Non-Parametric Instance
  Discrimination" and used by DINO and solo-learn. Written here because scikit-learn's
  KNeighborsClassifier has no temperature-weighted vote.
- ``mlp``: standardised features + one hidden layer (scikit-learn's MLP).
- ``finetune``, ``lora``, ``svfit``: the encoder itself trained with a head
  (:mod:`unlabeled.bench.tuning`): fully, through LoRA adapters, or through its singular values.
- ``semi``: the encoder and head trained with FixMatch on the labelled subset and the rest of
  the train split, unlabelled (:mod:`unlabeled.bench.semi`); classification only.

Regression tasks use ridge regression for ``linear`` (and, with its penalty chosen by
leave-one-out, for ``ridge``), a similarity-weighted mean of the
neighbours' targets for ``knn``, and an MLP regressor for ``mlp``; naive Bayes has no
regression form.

    probe = make_probe("linear", C=1.0).fit(X, y)
    probe.predict(X_test)
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Ridge, RidgeClassifier, RidgeClassifierCV, RidgeCV
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.preprocessing import normalize as sk_normalize

from unlabeled.bench.logistic import LogisticProbe, fit_probes

KNN_TEMPERATURE = 0.07


STANDARDISE_ROWS = 4096  # rows a Standardise fit reads at once


class Standardise(StandardScaler):
    """Standardised features; sparse ones (TF-IDF, the text baseline) pass through as they are:
    centring would make them dense, and scaling a rare n-gram by its tiny spread would make it
    loud. Their rows are unit vectors already."""

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> Standardise:
        self.sparse_ = sp.issparse(X)
        if self.sparse_:
            return self
        if len(X) <= STANDARDISE_ROWS:
            return super().fit(X, y, sample_weight)
        # scikit-learn's own incremental update, a block of rows at a time: fitted on the whole
        # matrix at once it holds a float64 copy and its squares (two and four times the float32
        # features' size)
        self._reset()
        for s in range(0, len(X), STANDARDISE_ROWS):
            w = None if sample_weight is None else sample_weight[s : s + STANDARDISE_ROWS]
            self.partial_fit(X[s : s + STANDARDISE_ROWS], y, w)
        return self

    def transform(self, X: Any, copy: bool | None = None) -> Any:
        return X if self.sparse_ else super().transform(X, copy)


class KNNProbe(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier on cosine similarity with a temperature-weighted vote."""

    def __init__(self, k: int = 20, temperature: float = KNN_TEMPERATURE) -> None:
        self.k = k
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNProbe:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        self.classes_, self.y_ = np.unique(y, return_inverse=True)
        self.X_ = X if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        sims, idx = neighbours(X, self.X_, self.k)
        return knn_vote(sims, self.y_[idx], len(self.classes_), self.temperature)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


SIMILARITY_BLOCK = 1 << 25  # similarities held at once by a neighbour search: 128 MiB of float32


def neighbours(X: np.ndarray, ref: np.ndarray, k: int, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and indices of the ``k`` most similar rows of ``ref`` for each
    row of ``X``, most similar first (torch: its matmul and top-k are several times faster
    than numpy's argpartition on the CPU). Queries go ``chunk`` at a time, by default as many
    as keep a block of similarities within SIMILARITY_BLOCK (4,096 queries against the 60,000
    Fashion-MNIST train images held 983 MB in each bench worker)."""
    chunk = chunk or max(1, min(4096, SIMILARITY_BLOCK // max(1, ref.shape[0])))
    if sp.issparse(X):  # TF-IDF: unit rows, sparse products, one dense chunk of similarities at a time
        q, r = (sk_normalize(a).astype(np.float32) for a in (X, ref))
        k = min(k, r.shape[0])
        parts = [
            torch.topk(torch.from_numpy((q[s : s + chunk] @ r.T).toarray()), k, dim=1)
            for s in range(0, q.shape[0], chunk)
        ]
        sims, idx = zip(*parts, strict=True)
        return torch.cat(sims).numpy(), torch.cat(idx).numpy()
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


class KNNRegressorProbe(RegressorMixin, BaseEstimator):
    """The kNN probe for regression targets: the neighbours' targets averaged with the same
    temperature-weighted cosine similarities."""

    def __init__(self, k: int = 20, temperature: float = KNN_TEMPERATURE) -> None:
        self.k = k
        self.temperature = temperature

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNRegressorProbe:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        # sparse as it comes (the text baseline's TF-IDF), as the classifier's kNN keeps it
        self.X_ = X if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        self.y_ = np.asarray(y, dtype=np.float64)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        sims, idx = neighbours(X, self.X_, self.k)
        return knn_mean(sims, self.y_[idx], self.temperature)


def knn_mean(sims: np.ndarray, targets: np.ndarray, temperature: float) -> np.ndarray:
    """The neighbours' targets averaged with temperature-weighted similarities, in float64:
    float32 weights carried a relative error of 1e-7 into targets near 1e12 (errors of 1e4)."""
    sims = np.asarray(sims, dtype=np.float64)
    w = np.exp((sims - sims[:, :1]) / temperature)
    return (w * targets).sum(1) / w.sum(1)


Scorer = Callable[[np.ndarray, np.ndarray, "np.ndarray | None", np.ndarray], float]


def knn_grid_scores(
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    grid: tuple[float, ...],
    scorer: Scorer,
) -> list[float]:
    """Validation scores for every k of the grid from one neighbour search."""
    classes, codes = np.unique(y_fit, return_inverse=True)
    sims, idx = neighbours(X_val, X_fit, int(max(grid)))
    scores = []
    for k in map(int, grid):
        proba = knn_vote(sims[:, :k], codes[idx[:, :k]], len(classes), KNN_TEMPERATURE)
        scores.append(scorer(y_val, classes[proba.argmax(1)], proba, classes))
    return scores


def knn_regression_grid_scores(
    X_fit: np.ndarray,
    y_fit: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    grid: tuple[float, ...],
    scorer: Scorer,
) -> list[float]:
    sims, idx = neighbours(X_val, X_fit, int(max(grid)))
    targets = np.asarray(y_fit, dtype=np.float64)[idx]
    return [
        scorer(y_val, knn_mean(sims[:, :k], targets[:, :k], KNN_TEMPERATURE), None, np.array([]))
        for k in map(int, grid)
    ]


def _linear(C: float = 1.0, init: Any = None) -> Pipeline:
    """Standardised features + multinomial logistic regression (from ``init``, a warm start)."""
    return _quiet(make_pipeline(Standardise(), LogisticProbe(C=C, max_iter=500, tol=1e-3, init=init)))


def warm_key(value: float, y: np.ndarray) -> tuple[float, bytes]:
    """Where a warm-started probe keeps its solution for hyper-parameter ``value`` on labels
    ``y``: a start fits another problem only with the same classes."""
    return float(value), np.unique(np.asarray(y)).tobytes()


def logistic_grid_scores(
    X_fit: Any,
    y_fit: np.ndarray,
    X_val: Any,
    y_val: np.ndarray,
    grid: tuple[float, ...],
    scorer: Any,
    warm: dict[Any, Any] | None = None,
) -> list[float]:
    """Validation scores of the linear probe (standardised features, logistic regression) at
    every C of ``grid``: on dense features every C's problem is solved in the same iterations
    (one product of the features with all C's weights side by side). ``warm``: solutions kept
    by an earlier fit of the same cell (:func:`warm_key`), read as starts where all are there,
    then replaced by these."""
    if sp.issparse(X_fit):
        return [scorer(y_val, *_outputs(_linear(c).fit(X_fit, y_fit), X_val)) for c in grid]
    scale = Standardise().fit(X_fit)
    keys = [warm_key(c, y_fit) for c in grid]
    init = torch.stack([warm[k] for k in keys]) if warm is not None and all(k in warm for k in keys) else None
    probes = fit_probes(scale.transform(X_fit), y_fit, grid, init=init)
    if warm is not None:
        warm.update((k, p.theta_) for k, p in zip(keys, probes, strict=True))
    X_val = scale.transform(X_val)
    return [scorer(y_val, *_outputs(probe, X_val)) for probe in probes]


def _outputs(model: Any, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return model.predict(X), model.predict_proba(X), model.classes_


def _standardised_target(model: Any) -> TransformedTargetRegressor:
    """Regressors fit standardised targets (a target in the hundredths or the thousands then
    needs no other regularisation grid), and predict in the target's units."""
    return TransformedTargetRegressor(regressor=model, transformer=_TargetScaler())


class _TargetScaler(StandardScaler):
    """A target's standardisation, undone in float64: a regressor on float32 features predicts
    in float32, and a target's mean of 1e12 added back in float32 lost four digits."""

    def inverse_transform(self, X: Any, copy: bool | None = None) -> Any:
        return super().inverse_transform(np.asarray(X, dtype=np.float64), copy)


def _ridge(alpha: float = 1.0) -> TransformedTargetRegressor:
    return _standardised_target(make_pipeline(Standardise(), Ridge(alpha=alpha)))


RIDGE_ALPHAS = tuple(float(a) for a in np.logspace(-3, 3, 10))  # MiniRocket's grid


class RidgeProbe(ClassifierMixin, BaseEstimator):
    """Standardised features + ridge classification (one-vs-all targets of ±1): ROCKET's and
    MiniRocket's classifier (Dempster et al. 2020, "ROCKET: Exceptionally fast and accurate
    time series classification using random convolutional kernels").

    With ``alpha=None`` the penalty is chosen from ``alphas`` by leave-one-out on the training
    labels themselves, which ridge computes in closed form (scikit-learn's
    ``RidgeClassifierCV``); the bench protocol does this when a task has no groups, and with
    groups gives a fixed ``alpha`` chosen on its group-aware validation split instead.
    ``predict_proba`` is a softmax of the decision values: it ranks (for AUROC) but is not
    calibrated."""

    def __init__(self, alpha: float | None = None, alphas: tuple[float, ...] = RIDGE_ALPHAS) -> None:
        self.alpha, self.alphas = alpha, alphas

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgeProbe:
        """Fit the scaler and the ridge classifier; ``alpha_`` is the penalty used."""
        ridge = RidgeClassifierCV(alphas=np.asarray(self.alphas)) if self.alpha is None else RidgeClassifier(self.alpha)
        self.pipe_ = make_pipeline(Standardise(), ridge).fit(X, y)
        self.classes_ = self.pipe_.classes_
        self.alpha_ = float(self.pipe_[-1].alpha_ if self.alpha is None else self.alpha)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """One score per class (one signed score for two classes)."""
        return self.pipe_.decision_function(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class of the highest score."""
        return self.pipe_.predict(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Softmax of the scores, columns in ``classes_`` order."""
        d = self.decision_function(X)
        return softmax(np.stack([-d, d], 1) if d.ndim == 1 else d, axis=1)


def _ridge_loo(alpha: float | None = None, alphas: tuple[float, ...] = RIDGE_ALPHAS) -> TransformedTargetRegressor:
    """Ridge regression, its penalty chosen by leave-one-out when ``alpha`` is None."""
    if alpha is not None:
        return _ridge(alpha)
    return _standardised_target(make_pipeline(Standardise(), RidgeCV(alphas=np.asarray(alphas))))


def chosen_by_probe(model: Any) -> float | None:
    """The penalty a self-tuning probe chose while fitting (``ridge``), else None."""
    inner = getattr(model, "regressor_", model)  # regression probes wrap the pipeline
    last = inner[-1] if isinstance(inner, Pipeline) else inner
    value = getattr(last, "alpha_", None)
    return None if value is None else float(value)


class _DenseNB(GaussianNB):
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _DenseNB:
        if sp.issparse(X):
            raise ValueError("the nb probe takes dense features; sparse ones (TF-IDF) have no Gaussian per n-gram")
        super().fit(X, y, sample_weight)
        if self.epsilon_ <= 0:  # every feature constant (a collapsed encoder): scikit-learn's
            # smoothing is var_smoothing times the largest variance, 0 here, and its likelihoods
            # NaN; smooth on the standardised features' scale instead, so the prior decides
            self.epsilon_ = self.var_smoothing
            self.var_ = self.var_ + self.epsilon_
        return self


def _nb(var_smoothing: float = 1e-9) -> Pipeline:
    return make_pipeline(StandardScaler(), _DenseNB(var_smoothing=var_smoothing))


def _mlp(alpha: float = 1e-4, regression: bool = False) -> Any:
    """One hidden layer of 256 ReLU units (scikit-learn, Adam), L2 penalty ``alpha``; a
    fixed epoch budget (no early stopping: it would carve its own split out of few labels)."""
    cls = MLPRegressor if regression else MLPClassifier
    mlp = cls(
        hidden_layer_sizes=(256,), alpha=alpha, batch_size="auto", learning_rate_init=1e-3, max_iter=60, random_state=0
    )
    pipe = _quiet(make_pipeline(Standardise(), mlp))  # TF-IDF: sparse, as it is
    return _standardised_target(pipe) if regression else pipe


class QuietPipeline(Pipeline):
    """A pipeline whose ``fit`` does not warn that a fixed iteration budget ended before
    convergence (the budgets here are deliberate; the validation split judges the result)."""

    def fit(self, X: Any, y: Any = None, **params: Any) -> QuietPipeline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return super().fit(X, y, **params)


def _quiet(pipe: Pipeline) -> QuietPipeline:
    return QuietPipeline(pipe.steps)


@dataclass(frozen=True)
class ProbeSpec:
    """A probe for one kind of task: how to make one from its hyper-parameter, and the grid
    to choose it from. ``inputs="raw"`` probes train the encoder itself (they are given
    samples, not features, and choose their own learning rate and epochs with ``tune``)."""

    name: str
    make: Callable[..., Any]
    param: str
    grid: tuple[float, ...]
    grid_scores: Callable[..., list[float]] | None = None  # validation scores of the whole grid at once
    inputs: str = "features"
    tune: Callable[..., dict[str, Any]] | None = None
    # chooses ``param`` itself from ``grid`` while fitting (ridge's leave-one-out) when the task
    # has no groups; with groups the protocol chooses it on its group-aware validation split
    self_tuning: bool = False
    # also given the train split's samples, unlabelled (``X_unlabelled``): the semi probe
    unlabelled: bool = False
    # the grid for sparse features (TF-IDF), whose unscaled unit rows want weaker penalties
    sparse_grid: tuple[float, ...] | None = None
    # ``grid_scores`` takes ``warm`` (:func:`logistic_grid_scores`) and ``make`` takes ``init``:
    # a cell's later seeds start from the solutions of the one before, its refit from its
    # own grid's solution for the chosen value (the same optimum, reached in fewer iterations)
    warm_starts: bool = False

    def grid_for(self, X: Any) -> tuple[float, ...]:
        return self.sparse_grid if self.sparse_grid is not None and sp.issparse(X) else self.grid


class _Lazy:
    """``unlabeled.bench.<module>.<attr>(..., **bound)``, imported only when called (the
    fine-tuning and semi-supervised probes bring peft and the training loop; the frozen probes
    need neither)."""

    def __init__(self, module: str, attr: str, **bound: Any) -> None:
        self.module, self.attr, self.bound = module, attr, bound

    def __call__(self, *args: Any, **kw: Any) -> Any:
        module = importlib.import_module(f"unlabeled.bench.{self.module}")
        return getattr(module, self.attr)(*args, **self.bound, **kw)


FINETUNE_PROBES = ("finetune", "lora", "svfit")
_RAW = {
    name: ProbeSpec(
        name,
        _Lazy("tuning", "FinetuneProbe", mode=mode),
        "lr",
        (),
        inputs="raw",
        tune=_Lazy("tuning", "tune", mode=mode),
    )
    for name, mode in zip(FINETUNE_PROBES, ("full", "lora", "svfit"), strict=True)
}

_SEMI = ProbeSpec(
    "semi",
    _Lazy("semi", "SemiProbe"),
    "max_steps",
    (),
    inputs="raw",
    tune=_Lazy("semi", "tune_semi"),
    unlabelled=True,
)

PROBES: dict[str, ProbeSpec] = {
    p.name: p
    for p in (
        ProbeSpec(
            "linear",
            _linear,
            "C",
            (0.01, 0.1, 1.0),
            logistic_grid_scores,
            sparse_grid=(1.0, 10.0, 100.0),
            warm_starts=True,
        ),
        ProbeSpec("ridge", RidgeProbe, "alpha", RIDGE_ALPHAS[::-1], self_tuning=True),  # simple first
        ProbeSpec("knn", KNNProbe, "k", (5, 20, 50), knn_grid_scores),
        ProbeSpec("nb", _nb, "var_smoothing", (1e-9, 1e-3, 1e-1)),
        ProbeSpec("mlp", _mlp, "alpha", (1e-4, 1e-2, 1.0)),
        *_RAW.values(),
        _SEMI,
    )
}
REGRESSION_PROBES: dict[str, ProbeSpec] = {
    p.name: p
    for p in (
        ProbeSpec("linear", _ridge, "alpha", (1.0, 10.0, 100.0, 1000.0)),
        ProbeSpec("ridge", _ridge_loo, "alpha", RIDGE_ALPHAS[::-1], self_tuning=True),
        ProbeSpec("knn", KNNRegressorProbe, "k", (5, 20, 50), knn_regression_grid_scores),
        ProbeSpec("mlp", functools.partial(_mlp, regression=True), "alpha", (1e-4, 1e-2, 1.0)),
        *_RAW.values(),
    )
}


def probe_spec(name: str, kind: str = "classification") -> ProbeSpec:
    """The probe ``name`` for a ``classification`` or ``regression`` task."""
    table = REGRESSION_PROBES if kind == "regression" else PROBES
    if name not in table:
        if name in PROBES:
            raise ValueError(f"probe {name!r} has no {kind} form; {kind} probes: {', '.join(table)}")
        raise ValueError(f"unknown probe {name!r}; choose from {', '.join(PROBES)}")
    return table[name]


def make_probe(name: str, kind: str = "classification", **params: Any) -> Any:
    """An unfitted probe by name (``linear``, ``ridge``, ``knn``, ``nb``, ``mlp``; the fine-tuning probes
    ``finetune``, ``lora``, ``svfit`` also need ``run=``)."""
    return probe_spec(name, kind).make(**params)
