"""What the Trainer reads: a batch source (a Collection, or arrays in memory) and a sampler
that says which positions make step ``s``'s batch.

Both are pure functions of the step, so a resumed run reads exactly the batches an
uninterrupted one would have.

    source = ArraySource(X, y)                       # or a Collection
    sampler = EpochSampler(np.arange(len(X)), batch=64, seed=0)
    sampler.positions(step, total)                   # this rank's share of step's batch
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from unlabeled.data.collection import NO_LABEL


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
    """Which positions form each step's batch on this process; ``total`` is the run's step
    count, for a sampler whose order changes over the run (:class:`MixSampler`)."""

    steps_per_epoch: int

    def positions(self, step: int, total: int | None = None) -> np.ndarray: ...


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

    def positions(self, step: int, total: int | None = None) -> np.ndarray:
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

    def positions(self, step: int, total: int | None = None) -> np.ndarray:
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

    @property
    def samples_per_step(self) -> int:
        """A process's samples a step, labelled and unlabelled (the trainer's samples/s)."""
        return self.batch * (1 + self.ratio)

    def _perm(self, tag: int, p: int) -> np.ndarray:
        """Pass ``p`` over the labelled (``tag`` 0) or unlabelled (1) pool, seeded by
        ``(seed, tag, p)``; the current passes are kept, not redrawn every step."""
        if (tag, p) not in self._perms:
            pool = self.unlabelled if tag else self.labelled
            self._perms = {k: v for k, v in self._perms.items() if k[0] != tag or k[1] >= p - 1}
            self._perms[tag, p] = np.random.default_rng([self.seed, tag, p]).permutation(pool)
        return self._perms[tag, p]

    def positions(self, step: int, total: int | None = None) -> np.ndarray:
        b, u = self.batch, self.batch * self.ratio
        first = step * self.world + self.rank
        lab = _stream(lambda p: self._perm(0, p), len(self.labelled), first * b, b)
        unl = _stream(lambda p: self._perm(1, p), len(self.unlabelled), first * u, u)
        return np.concatenate([lab, unl + self.offset])


def labels_on(col: Any, labelled: np.ndarray) -> np.ndarray:
    """``col``'s labels on the ``labelled`` positions, ``-1`` everywhere else: the labels a
    self-trained run learns from (:class:`SemiSource`)."""
    y = np.full(len(col), NO_LABEL, dtype=np.int64)
    y[labelled] = col.labels[labelled]
    return y


class SemiSource(Retargeted):
    """A collection read through :class:`SemiSampler`'s positions: ``p`` below the collection's
    length is a labelled sample with its label, ``p + len`` the same sample unlabelled
    (label ``-1``)."""

    def __init__(self, collection: Any, labels: np.ndarray) -> None:
        super().__init__(collection, np.concatenate([labels, np.full(len(labels), -1, dtype=labels.dtype)]))
        self.n = len(labels)

    def get(self, positions: np.ndarray) -> np.ndarray:
        return self.collection.get(np.asarray(positions) % self.n)


@dataclass
class MixSampler:
    """A mixture's order (:class:`~unlabeled.data.mixture.Mixture`): each process's batch of
    ``batch`` is dealt between the collections by a multinomial draw with the mixture's shares
    (``last_weights`` from step ``round((1 - last) * total)`` on), seeded by the step, and each
    collection's share is the next stretch of that collection's own stream of seeded
    permutations (``pools[k]``, mixture positions). The draws are made in blocks of ``BLOCK``
    steps and their running sums kept, so a step's batch costs the same at step 10 and at step
    100,000, and a resumed run draws exactly what an uninterrupted one did."""

    pools: list[np.ndarray]
    weights: tuple[float, ...]
    batch: int
    seed: int
    last: float = 0.0
    last_weights: tuple[float, ...] | None = None
    rank: int = 0
    world: int = 1
    BLOCK = 256
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    @property
    def steps_per_epoch(self) -> int:
        """A pass over every collection's pool, at the batch's size."""
        return sum(len(p) for p in self.pools) // (self.batch * self.world)

    def switch(self, total: int | None) -> int | None:
        """The first step drawn with the last shares (None: the shares never change)."""
        if self.last_weights is None or not total:
            return None
        return total - round(self.last * total)

    def _rows(self, block: int, boundary: int | None) -> np.ndarray:
        """Per draw (one per process per step) in ``block``: how many samples each collection gives."""
        g = np.arange(block * self.BLOCK, (block + 1) * self.BLOCK)
        rows = np.random.default_rng([self.seed, 17, 0, block]).multinomial(self.batch, self.weights, size=len(g))
        if boundary is not None and boundary < g[-1] + 1:
            later = np.random.default_rng([self.seed, 17, 1, block]).multinomial(
                self.batch, self.last_weights, size=len(g)
            )
            rows[g >= boundary] = later[g >= boundary]
        return rows

    def _counts(self, g: int, boundary: int | None) -> tuple[np.ndarray, np.ndarray]:
        """(samples each collection gave before draw ``g``, samples each gives at ``g``)."""
        if self._cache.get("boundary", -1) != boundary:
            self._cache = {"boundary": boundary, "starts": [np.zeros(len(self.pools), dtype=np.int64)], "rows": []}
        starts, rows = self._cache["starts"], self._cache["rows"]
        block, k = divmod(g, self.BLOCK)
        while len(rows) <= block:
            rows.append(self._rows(len(rows), boundary))
            starts.append(starts[-1] + rows[-1].sum(axis=0))
        return starts[block] + rows[block][:k].sum(axis=0), rows[block][k]

    def _perm(self, part: int, p: int) -> np.ndarray:
        """Pass ``p`` over collection ``part``'s pool; the current passes are kept."""
        if (part, p) not in self._perms:
            self._perms = {key: v for key, v in self._perms.items() if key[0] != part or key[1] >= p - 1}
            self._perms[part, p] = np.random.default_rng([self.seed, 17, 2, part, p]).permutation(self.pools[part])
        return self._perms[part, p]

    def positions(self, step: int, total: int | None = None) -> np.ndarray:
        boundary = self.switch(total)
        g = step * self.world + self.rank
        before, now = self._counts(g, None if boundary is None else boundary * self.world)
        out = [
            _stream(lambda p, k=k: self._perm(k, p), len(self.pools[k]), int(before[k]), int(now[k]))
            for k in range(len(self.pools))
            if now[k]
        ]
        return np.sort(np.concatenate(out))
