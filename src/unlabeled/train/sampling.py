"""What the Trainer reads: a batch source (a Collection, or arrays in memory) and a sampler
that says which positions make step ``s``'s batch.

Both are pure functions of the step, so a resumed run reads exactly the batches an
uninterrupted one would have.

    source = ArraySource(X, y)                       # or a Collection
    sampler = EpochSampler(np.arange(len(X)), batch=64, seed=0)
    sampler.positions(step)                          # this rank's share of step's batch
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


class BatchSource(Protocol):
    """Anything that reads samples by position: a :class:`~unlabeled.data.Collection`, or an
    :class:`ArraySource`. ``labels`` are the targets the supervised objectives train on."""

    @property
    def labels(self) -> np.ndarray | None: ...

    def get(self, positions: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class ArraySource:
    """Samples (and targets) already in memory: a probe's few labelled samples, or the
    embeddings a LAF VAE trains on."""

    samples: np.ndarray
    labels: np.ndarray | None = None

    def get(self, positions: np.ndarray) -> np.ndarray:
        return self.samples[positions]


class Retargeted:
    """A collection whose targets are replaced (a teacher's class distributions, one row per
    sample): ``labels`` is ``targets``, everything else is the collection's."""

    def __init__(self, collection: Any, targets: np.ndarray) -> None:
        self.collection, self.labels = collection, targets

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collection, name)


class Sampler(Protocol):
    """Which positions form each step's batch on this process."""

    steps_per_epoch: int

    def positions(self, step: int) -> np.ndarray: ...


@dataclass
class EpochSampler:
    """Pretraining's order: epoch ``e`` is a permutation of ``positions`` seeded by
    ``(seed, e)``, cut into global batches of ``batch * world`` (the rest dropped, so every
    batch has the same size); rank ``r`` takes its slice, sorted for reading locality on
    memory-mapped shards. Ranks never overlap."""

    positions_: np.ndarray
    batch: int
    seed: int
    rank: int = 0
    world: int = 1
    _perm: tuple[int, np.ndarray] | None = field(default=None, repr=False)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.positions_) // (self.batch * self.world)

    def positions(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.steps_per_epoch)
        if self._perm is None or self._perm[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._perm = (epoch, rng.permutation(self.positions_))
        start = k * self.batch * self.world + self.rank * self.batch
        return np.sort(self._perm[1][start : start + self.batch])


@dataclass
class SplitSampler:
    """A few-sample fit's order: every sample once per epoch, in ``batches`` batches that differ
    in size by at most one (never a batch of one beside full ones: batch norm needs two), the
    epochs' permutations drawn in turn from one generator seeded by ``seed``. One process only."""

    n: int
    batches: int
    seed: int
    _rng: np.random.Generator | None = field(default=None, repr=False)
    _current: tuple[int, list[np.ndarray]] = field(default=(-1, []), repr=False)

    @property
    def steps_per_epoch(self) -> int:
        return self.batches

    def positions(self, step: int) -> np.ndarray:
        epoch, k = divmod(step, self.batches)
        if self._rng is None or epoch < self._current[0]:  # (re)start the sequence of epochs
            self._rng, self._current = np.random.default_rng(self.seed), (-1, [])
        while self._current[0] < epoch:
            self._current = (self._current[0] + 1, np.array_split(self._rng.permutation(self.n), self.batches))
        return self._current[1][k]


def _stream(perm: Callable[[int], np.ndarray], size: int, start: int, count: int) -> np.ndarray:
    """Items ``start .. start + count`` of an endless stream over a pool of ``size``: its
    permutations ``perm(pass)``, one after another (a pool smaller than the count is passed
    over several times)."""
    passes, within = np.divmod(np.arange(start, start + count), size)
    out = np.empty(count, dtype=np.int64)
    for p in np.unique(passes):
        out[passes == p] = perm(int(p))[within[passes == p]]
    return out


@dataclass
class SemiSampler:
    """Semi-supervised order (FixMatch): each step's batch is ``batch`` labelled positions
    then ``ratio * batch`` unlabelled ones, each drawn from its own stream of seeded
    permutations (the labelled stream wraps around many times per pass over the unlabelled
    pool). Unlabelled positions are offset by ``offset`` (the collection's length), which is how
    :class:`SemiSource` tells them apart: a sample may be in both pools. An epoch is one pass
    over the unlabelled pool, or ``every`` steps where given (a probe that scores its validation
    split that often); rank ``r`` takes its own slice of both streams."""

    labelled: np.ndarray
    unlabelled: np.ndarray
    batch: int
    ratio: int
    seed: int
    offset: int
    rank: int = 0
    world: int = 1
    every: int = 0
    _perms: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def steps_per_epoch(self) -> int:
        return self.every or len(self.unlabelled) // (self.batch * self.ratio * self.world)

    def _perm(self, tag: int, p: int) -> np.ndarray:
        """Pass ``p`` over the labelled (``tag`` 0) or unlabelled (1) pool, seeded by
        ``(seed, tag, p)``; the current passes are kept, not redrawn every step."""
        if (tag, p) not in self._perms:
            pool = self.unlabelled if tag else self.labelled
            self._perms = {k: v for k, v in self._perms.items() if k[0] != tag or k[1] >= p - 1}
            self._perms[tag, p] = np.random.default_rng([self.seed, tag, p]).permutation(pool)
        return self._perms[tag, p]

    def positions(self, step: int) -> np.ndarray:
        b, u = self.batch, self.batch * self.ratio
        first = step * self.world + self.rank
        lab = _stream(lambda p: self._perm(0, p), len(self.labelled), first * b, b)
        unl = _stream(lambda p: self._perm(1, p), len(self.unlabelled), first * u, u)
        return np.concatenate([lab, unl + self.offset])


class SemiSource(Retargeted):
    """A collection read through :class:`SemiSampler`'s positions: ``p`` below the collection's
    length is a labelled sample with its label, ``p + len`` the same sample unlabelled
    (label ``-1``)."""

    def __init__(self, collection: Any, labels: np.ndarray) -> None:
        super().__init__(collection, np.concatenate([labels, np.full(len(labels), -1, dtype=labels.dtype)]))
        self.n = len(labels)

    def get(self, positions: np.ndarray) -> np.ndarray:
        return self.collection.get(np.asarray(positions) % self.n)
