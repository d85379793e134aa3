"""Multinomial logistic regression for the linear probe, fitted by L-BFGS in PyTorch for
several penalties at once.

The objective is scikit-learn's ``LogisticRegression`` (L2, unpenalised intercept, the mean
cross-entropy plus ``||W||² / (2 C n)``; two classes as one logit, as scikit-learn fits them)
and so is the stopping rule: the largest gradient component at most ``tol``. Written here, not
taken from scikit-learn, because the probe's grid needs three penalties on the same features:
one matrix product of the features with every penalty's weights side by side serves them all,
in float32: a linear-probe cell at 100% of Fashion-MNIST's labels (the grid and the refit) took
half of scikit-learn's time (BENCHMARKS.md, "Bench speed"). L-BFGS: Liu & Nocedal, "On the
limited memory BFGS method for large scale optimization", Math. Programming 1989 (two-loop
recursion, Nocedal 1980), with a backtracking Armijo search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

MEMORY = 10  # L-BFGS's history, scipy's default
ARMIJO = 1e-4
MAX_BACKTRACKS = 30


@dataclass
class Solution:
    """Weights (P, K, d) and intercepts (P, K) for each of P penalties, K = 1 for two classes,
    and the iterations each took."""

    weight: torch.Tensor
    bias: torch.Tensor
    n_iter: np.ndarray


class _Problem:
    """The P penalised objectives on one (X, y): values and gradients at P parameter vectors.

    Samples are the last axis throughout (features stored (d, n), logits (P, K, n)): on a CPU
    both products and the softmax over K ran about twice as fast that way round as with
    samples first (measured single-threaded at 48k × 784, 3 × 10 classes)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor, n_classes: int, Cs: Sequence[float]) -> None:
        self.Xt, self.y, self.n = X.T.contiguous(), y, len(X)
        self.d, self.k = X.shape[1], 1 if n_classes == 2 else n_classes
        self.reg = torch.tensor([1.0 / (c * self.n) for c in Cs], dtype=torch.float64)

    def split(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d, k = self.d, self.k
        return theta[:, : d * k].reshape(-1, k, d), theta[:, d * k :]

    def logits(self, theta: torch.Tensor) -> torch.Tensor:
        """(P, K', n) for P parameter vectors (K' = 2 for two classes: 0 and the one logit)."""
        W, b = self.split(theta)
        z = (W.reshape(-1, self.d) @ self.Xt).reshape(len(theta), self.k, self.n) + b[:, :, None]
        return torch.cat([torch.zeros_like(z), z], dim=1) if self.k == 1 else z

    def __call__(self, theta: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Objective values (P,) in float64 and gradients (P, D) of the problems ``rows``."""
        p = len(theta)
        z = self.logits(theta)
        target = self.y.view(1, 1, -1).expand(p, 1, -1)
        W, _ = self.split(theta)
        reg = self.reg[rows]
        nll = torch.logsumexp(z, dim=1) - z.gather(1, target).squeeze(1)
        value = nll.double().mean(1) + 0.5 * reg * W.double().square().sum((1, 2))
        g = torch.softmax(z, dim=1)
        g.scatter_add_(1, target, -torch.ones_like(g[:, :1]))
        g = (g[:, 1:] if self.k == 1 else g) / self.n  # (P, K, n)
        gW = (g.reshape(-1, self.n) @ self.Xt.T).reshape(p, self.k, self.d) + reg.float().view(-1, 1, 1) * W
        return value, torch.cat([gW.reshape(p, -1), g.sum(2)], dim=1)


def _direction(g: torch.Tensor, S: torch.Tensor, Y: torch.Tensor, rho: torch.Tensor, order: list[int]) -> torch.Tensor:
    """-H g by the two-loop recursion, for every problem at once; ``order``: history slots,
    newest first. A slot whose rho is 0 (no curvature pair) changes nothing."""
    q = g.clone()
    alpha = []
    for i in order:
        a = rho[:, i] * (S[:, i] * q).sum(1)
        q -= a[:, None] * Y[:, i]
        alpha.append(a)
    if order:
        i = order[0]
        yy = (Y[:, i] * Y[:, i]).sum(1)
        gamma = torch.where(rho[:, i] > 0, 1.0 / (rho[:, i] * yy).clamp_min(1e-30), torch.ones_like(yy))
        q *= gamma[:, None]
    for i, a in zip(reversed(order), reversed(alpha), strict=True):
        b = rho[:, i] * (Y[:, i] * q).sum(1)
        q += (a - b)[:, None] * S[:, i]
    return -q


def fit_logistic(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    Cs: Sequence[float],
    *,
    tol: float = 1e-3,
    max_iter: int = 500,
    init: torch.Tensor | None = None,
) -> Solution:
    """L2-penalised multinomial logistic regression of ``y`` (class indices) on ``X`` for every
    C in ``Cs``, by L-BFGS on all of them at once; ``init`` (P, D): starting parameters (zeros
    otherwise). A problem stops when its largest gradient component is at most ``tol``, when a
    line search finds no decrease, or after ``max_iter`` iterations."""
    if not torch.isfinite(X).all():
        raise ValueError("logistic regression: the features contain NaN or infinity")
    prob = _Problem(X, y, n_classes, Cs)
    P, D = len(Cs), prob.d * prob.k + prob.k
    theta = torch.zeros(P, D, dtype=X.dtype) if init is None else init.clone().to(X.dtype)
    S, Y = torch.zeros(P, MEMORY, D, dtype=X.dtype), torch.zeros(P, MEMORY, D, dtype=X.dtype)
    rho = torch.zeros(P, MEMORY, dtype=X.dtype)
    n_iter = np.zeros(P, dtype=np.int64)
    every = torch.arange(P)
    f, g = prob(theta, every)
    active = g.abs().amax(1) > tol
    order: list[int] = []
    for it in range(max_iter):
        if not active.any():
            break
        rows = every[active]
        d = _direction(g[rows], S[rows], Y[rows], rho[rows], order)
        slope = (d * g[rows]).sum(1)
        bad = slope >= 0  # not a descent direction: restart from the gradient
        d[bad], slope[bad] = -g[rows][bad], -(g[rows][bad].square().sum(1))
        step = torch.ones(len(rows), dtype=X.dtype)
        if not order:
            step = (1.0 / g[rows].norm(dim=1)).clamp(max=1.0)
        new_theta, new_f, new_g, ok = _armijo(prob, theta[rows], f[rows], d, slope, step, rows)
        slot = it % MEMORY
        s, yv = new_theta - theta[rows], new_g - g[rows]
        sy = (s * yv).sum(1)
        S[rows, slot], Y[rows, slot] = s, yv
        rho[rows, slot] = torch.where(sy > 1e-10, 1.0 / sy.clamp_min(1e-10), torch.zeros_like(sy))
        order = [slot, *[o for o in order if o != slot]][:MEMORY]
        theta[rows], f[rows], g[rows] = new_theta, new_f, new_g
        n_iter[rows.numpy()] = it + 1
        done = (new_g.abs().amax(1) <= tol) | ~ok
        active[rows[done]] = False
    W, b = prob.split(theta)
    return Solution(W, b, n_iter)


def _armijo(
    prob: _Problem,
    theta: torch.Tensor,
    f: torch.Tensor,
    d: torch.Tensor,
    slope: torch.Tensor,
    step: torch.Tensor,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Backtracking along ``d`` from ``step`` until each problem's value falls by at least
    ARMIJO × step × slope: the new (theta, value, gradient) and whether each found a decrease."""
    out_theta, out_f = theta.clone(), f.clone()
    out_g = torch.zeros_like(theta)
    ok = torch.zeros(len(theta), dtype=torch.bool)
    pending = torch.arange(len(theta))
    for _ in range(MAX_BACKTRACKS):
        trial = theta[pending] + step[pending, None] * d[pending]
        tf, tg = prob(trial, rows[pending])
        # a decrease, strictly: near float32's resolution ARMIJO * step * slope rounds away and
        # an unchanged value would pass, and the problem would spin to max_iter on steps of 0
        accept = (tf <= f[pending] + ARMIJO * step[pending].double() * slope[pending].double()) & (tf < f[pending])
        hit = pending[accept]
        out_theta[hit], out_f[hit], out_g[hit], ok[hit] = trial[accept], tf[accept], tg[accept], True
        pending = pending[~accept]
        if not len(pending):
            break
        step[pending] *= 0.5
    if len(pending):  # no decrease found: keep the point, with its gradient
        _, out_g[pending] = prob(theta[pending], rows[pending])
    return out_theta, out_f, out_g, ok


class LogisticProbe(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression with scikit-learn's estimator API: dense features by
    :func:`fit_logistic`, sparse ones (TF-IDF) by scikit-learn's SAGA, whose step on unit rows
    is fixed by the largest row norm (at 10% of WordNet's labels, 12k glosses × 282k n-grams,
    45 classes, C=100, it fit in 13 s against L-BFGS's 140 s, within 0.6 points)."""

    def __init__(self, C: float = 1.0, tol: float = 1e-3, max_iter: int = 500, init: Any = None) -> None:
        self.C, self.tol, self.max_iter, self.init = C, tol, max_iter, init

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> LogisticProbe:
        if sp.issparse(X) or sample_weight is not None:
            solver = "saga" if sp.issparse(X) else "lbfgs"
            self.sklearn_ = LogisticRegression(C=self.C, tol=self.tol, max_iter=self.max_iter, solver=solver)
            self.sklearn_.fit(X, y, sample_weight)
            self.classes_ = self.sklearn_.classes_
            return self
        init = None if self.init is None else torch.as_tensor(self.init)[None]
        (fitted,) = fit_probes(X, y, [self.C], tol=self.tol, max_iter=self.max_iter, init=init)
        # its fitted attributes (the parameters are the same; ``init`` is this probe's own)
        self.__dict__.update({k: v for k, v in fitted.__dict__.items() if k != "init"})
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        if self.sklearn_ is not None:
            return self.sklearn_.decision_function(X)
        z = (as_float32(X) @ self.coef_.T + self.intercept_).numpy()
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.sklearn_ is not None:
            return self.sklearn_.predict_proba(X)
        z = self.decision_function(X)
        return softmax(np.stack([-z / 2, z / 2], 1) if z.ndim == 1 else z, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        z = self.decision_function(X)
        return self.classes_[(z > 0).astype(int) if z.ndim == 1 else z.argmax(1)]

    @property
    def theta_(self) -> torch.Tensor:
        """The fitted parameters as one vector (weights, then intercepts): a warm start for
        another fit of the same classes and features (``init``)."""
        return torch.cat([self.coef_.reshape(-1), self.intercept_.reshape(-1)])


def as_float32(X: Any) -> torch.Tensor:
    """``X`` as a contiguous float32 tensor."""
    return torch.as_tensor(np.ascontiguousarray(X, dtype=np.float32))


def fit_probes(
    X: Any, y: Any, Cs: Sequence[float], *, tol: float = 1e-3, max_iter: int = 500, init: torch.Tensor | None = None
) -> list[LogisticProbe]:
    """One fitted :class:`LogisticProbe` per C of ``Cs`` on dense features ``X``, every C
    solved at once by :func:`fit_logistic`; ``init`` (one row per C, as ``theta_``): where
    to start, used only where its shape fits these classes and features."""
    classes, index = np.unique(np.asarray(y), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"logistic regression needs samples of at least 2 classes; got {len(classes)}")
    k = 1 if len(classes) == 2 else len(classes)
    if init is not None and tuple(init.shape) != (len(Cs), (np.shape(X)[1] + 1) * k):
        init = None
    sol = fit_logistic(as_float32(X), torch.as_tensor(index), len(classes), Cs, tol=tol, max_iter=max_iter, init=init)
    probes = []
    for C, w, b, n in zip(Cs, sol.weight, sol.bias, sol.n_iter, strict=True):
        probe = LogisticProbe(C=C, tol=tol, max_iter=max_iter)
        probe.sklearn_, probe.classes_, probe.coef_, probe.intercept_ = None, classes, w, b
        probe.n_iter_ = np.array([n])
        probes.append(probe)
    return probes
