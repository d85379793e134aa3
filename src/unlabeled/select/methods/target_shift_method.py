"""``target-shift``: GOT-D, Kang et al. 2024, "Get more for less: Principled Data Selection
for Warming Up Fine-Tuning in LLMs" (ICLR): the entropic optimal transport between the
pool and the target; the gradient of the OT distance with respect to a pool sample's mass
is its dual potential, and the samples with the lowest potentials are those whose weight
moves the pool toward the target most."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from unlabeled._console import progress
from unlabeled.select import algorithms
from unlabeled.select.index import normalized
from unlabeled.select.methods.base import MethodInput, SelectionMethod

MAX_TARGET = 2000  # a larger target is subsampled to this many: the OT costs grow with pool x target
EPSILON = 0.05  # entropic regularisation, in units of the cost 1 - cosine


def sinkhorn_potentials(
    x: np.ndarray, y: np.ndarray, eps: float = EPSILON, iters: int = 200, tol: float = 1e-4
) -> np.ndarray:
    """The pool-side dual potential of entropic OT between uniform masses on ``x`` (pool)
    and ``y`` (target), cost 1 - cosine similarity; log-domain Sinkhorn (Cuturi 2013), stopped
    when no potential moves by more than ``tol`` in an iteration. The (pool x target) costs
    are computed once and kept while they fit in ``IN_MEMORY_BYTES / 2``; beyond that the pool
    is streamed in chunks and they are recomputed every iteration. Float32 throughout: costs
    lie in [0, 2], so the log-domain sums stay well within its range."""
    yt = torch.from_numpy(normalized(y))
    n, m = len(x), len(yt)
    log_a, log_b = -math.log(n), -math.log(m)
    f = torch.zeros(n)
    g = torch.zeros(m)
    step = algorithms.CHUNK
    cached = n * m * 4 <= algorithms.IN_MEMORY_BYTES // 2
    starts = range(0, n, step)

    def neg_cost(s: int) -> torch.Tensor:  # -C / eps for the chunk starting at s
        return (torch.from_numpy(normalized(x[s : s + step])) @ yt.T).sub_(1.0).div_(eps)

    costs = {s: neg_cost(s) for s in starts} if cached else {}
    with progress() as bar:
        task = bar.add_task("optimal transport", total=iters)
        for _ in range(iters):
            moved = 0.0
            for s in starts:  # f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps)
                c = costs[s] if cached else neg_cost(s)
                new = -eps * torch.logsumexp(c + (g / eps + log_b), dim=1)
                moved = max(moved, float((new - f[s : s + len(new)]).abs().max()))
                f[s : s + len(new)] = new
            parts = []  # g_j = -eps log sum_i a_i exp((f_i - C_ij) / eps), streamed over chunks
            for s in starts:
                c = costs[s] if cached else neg_cost(s)
                parts.append(torch.logsumexp(c + (f[s : s + len(c), None] / eps + log_a), dim=0))
            g = -eps * torch.logsumexp(torch.stack(parts), dim=0)
            bar.advance(task)
            if moved < tol:
                break
    return (f - f.mean()).numpy()


def target_shift(
    x: np.ndarray, target: np.ndarray, budget: int, seed: int, max_target: int = MAX_TARGET, eps: float = EPSILON
) -> tuple[np.ndarray, dict]:
    """GOT-D-style selection: the ``budget`` pool samples with the lowest OT dual potential."""
    if len(target) > max_target:
        target = target[np.sort(np.random.default_rng(seed).choice(len(target), max_target, replace=False))]
    f = sinkhorn_potentials(x, target, eps)
    chosen = np.argsort(f, kind="stable")[:budget]
    return np.sort(chosen), {"target_used": len(target), "epsilon": eps}


class TargetShift(SelectionMethod):
    """The ``budget`` candidates that move the pool toward the target most, by OT on at most
    ``max_target`` target samples with regularisation ``epsilon``."""

    name = "target-shift"
    needs_target = True
    max_target = MAX_TARGET
    epsilon = EPSILON

    def select(self, data: MethodInput) -> tuple[np.ndarray, dict[str, Any]]:
        return target_shift(data.vectors, data.target, data.budget, data.seed, self.max_target, self.epsilon)
