"""Several collections pretrained on as one, each drawn at its own rate, and a schedule that
changes the rates over the last part of training.

``pretrain DATA --mix "data/clean=0.9,data/domain=0.1"`` draws 90% of every batch from one
collection and 10% from the other, whatever their sizes (the mixtures of language-model
pretraining: The Pile, Gao et al. 2020; FineWeb2's rehydrated pools, Penedo et al. 2025).
``--upsample-last 0.2:data/domain=0.5`` raises the domain's share to half of every batch over
the last 20% of the steps, the rest shared by the other collections in their own proportions:
"Does your data spark joy?" (Blakeney et al. 2024) finds that upsampling domain data at the end
of training improves downstream results at no extra compute. A collection named only in
``--upsample-last`` joins the mixture at rate 0 before that point.

:class:`Mixture` reads the collections as one (a position is a collection's position offset by
the lengths of the collections before it); :class:`~unlabeled.train.sampling.MixSampler` deals
each step's batch between them. Both are pure functions of the spec recorded in the run's
``config.json`` (``data.mix``), so ``--resume`` continues the same mixture and schedule.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, samples_of
from unlabeled.data.collection import Collection, open_collection, weighted_positions

Weights = Mapping[str | os.PathLike[str], float]


@dataclass(frozen=True)
class Mix:
    """What ``--mix`` and ``--upsample-last`` ask for: collections by path with their shares of
    each batch (normalised to sum to 1), and over the ``last`` fraction of the steps the shares
    ``last_weights`` (None: the same throughout)."""

    paths: tuple[str, ...]
    weights: tuple[float, ...]
    last: float = 0.0
    last_weights: tuple[float, ...] | None = None


def _weight(text: str, where: str) -> float:
    try:
        w = float(text)
    except ValueError:
        raise UnlabeledError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(w) or w < 0:
        raise UnlabeledError(f"{where}: a weight must be a finite number of 0 or more, got {text}")
    return w


def parse_weights(text: str, where: str = "--mix") -> dict[str, float]:
    """``"data/a=0.9,data/b=0.1"`` -> ``{"data/a": 0.9, "data/b": 0.1}``."""
    out: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        path, eq, value = item.rpartition("=")
        if not eq or not path:
            raise UnlabeledError(f"{where} takes COLLECTION=WEIGHT pairs separated by commas, got {item!r}")
        if path in out:  # the later weight silently replaced the first
            raise UnlabeledError(f"{where} names {path} twice; give each collection one weight")
        out[path] = _weight(value, where)
    if not out:
        raise UnlabeledError(f"{where} names no collection")
    return out


def parse_upsample(text: str) -> tuple[float, dict[str, float]]:
    """``"0.2:data/domain=0.5"`` -> ``(0.2, {"data/domain": 0.5})``."""
    fraction, colon, rest = text.partition(":")
    if not colon:
        raise UnlabeledError(f"--upsample-last takes FRACTION:COLLECTION=WEIGHT[,...], got {text!r}")
    last = _weight(fraction, "--upsample-last")
    if not 0 < last < 1:
        raise UnlabeledError(f"--upsample-last: the fraction of the steps must be in (0, 1), got {fraction}")
    return last, parse_weights(rest, "--upsample-last")


def _key(path: str | os.PathLike[str]) -> str:
    return str(Path(path).resolve())


def plan_mix(data: str | os.PathLike[str], mix: Weights | str | None, upsample: Any = None) -> Mix | None:
    """The :class:`Mix` of a pretraining run on ``data`` with ``mix`` (``{path: weight}`` or
    its ``--mix`` string) and ``upsample`` (``(fraction, {path: weight})`` or its
    ``--upsample-last`` string); None when neither is given. ``data`` must be one of the mixed
    collections (without ``mix`` it is the only one, at weight 1)."""
    if mix is None and upsample is None:
        return None
    given = parse_weights(mix) if isinstance(mix, str) else dict(mix or {_key(data): 1.0})
    weights = {_key(p): _weight(str(w), "--mix") for p, w in given.items()}
    if len(weights) < len(given):  # two spellings of one folder (g/a and ./g/a): one weight was lost
        twice = next(p for p in given if sum(_key(q) == _key(p) for q in given) > 1)
        raise UnlabeledError(f"--mix names {twice} twice (as two paths to one folder); give it one weight")
    if _key(data) not in weights:
        raise UnlabeledError(f"{data} is not among the --mix collections ({', '.join(map(str, given))}); name it there")
    weights = {_key(data): weights.pop(_key(data)), **weights}  # DATA first: the run's own collection
    if upsample is None:
        return Mix(tuple(weights), _normalised(weights.values(), "--mix"))
    last, named = parse_upsample(upsample) if isinstance(upsample, str) else (float(upsample[0]), dict(upsample[1]))
    if not 0 < last < 1:
        raise UnlabeledError(f"--upsample-last: the fraction of the steps must be in (0, 1), got {last}")
    named = {_key(p): _weight(str(w), "--upsample-last") for p, w in named.items()}
    weights |= {p: 0.0 for p in named if p not in weights}  # named only here: rate 0 before
    before = _normalised(weights.values(), "--mix")
    return Mix(tuple(weights), before, last, _last_weights(tuple(weights), before, named))


def _normalised(values: Sequence[float] | Any, where: str) -> tuple[float, ...]:
    v = np.asarray(list(values), dtype=np.float64)
    if v.sum() <= 0:
        raise UnlabeledError(f"{where}: at least one weight must be above 0")
    return tuple(float(x) for x in v / v.sum())


def _last_weights(paths: tuple[str, ...], before: tuple[float, ...], named: dict[str, float]) -> tuple[float, ...]:
    """The shares over the last steps: the named collections' as given, the rest of each batch
    shared by the others in their proportions before (all named: normalised)."""
    given = sum(named.values())
    if given > 1 + 1e-9:
        raise UnlabeledError(f"--upsample-last: the named shares add up to {given:g}, more than 1")
    others = {p: w for p, w in zip(paths, before, strict=True) if p not in named}
    spread = sum(others.values())
    if spread <= 0:
        return _normalised([named.get(p, 0.0) for p in paths], "--upsample-last")
    return tuple(named[p] if p in named else (1 - given) * others[p] / spread for p in paths)


class Mixture:
    """Collections read as one: position ``p`` of collection ``k`` is ``offsets[k] + p``. It
    answers what pretraining asks of a collection (``get``, ``indices``, the modality, a content
    fingerprint that covers every part and the shares); the run records it as ``data.mix``."""

    def __init__(self, parts: Sequence[Collection], mix: Mix) -> None:
        self.parts, self.mix = list(parts), mix
        first = self.parts[0]
        for col in self.parts[1:]:
            if (col.modality, col.is_text) != (first.modality, first.is_text) or (
                not col.is_text and col.sample_shape != first.sample_shape
            ):
                raise UnlabeledError(
                    f"--mix: {col.path} holds {samples_of(col.modality, col.sample_shape)}, "
                    f"{first.path} {samples_of(first.modality, first.sample_shape)}; mixed collections must match"
                )
        self.offsets = np.cumsum([0] + [len(c) for c in self.parts])
        self.path, self.meta = first.path, first.meta
        self.labels = self.groups = self.classes = None
        # each part's ids under its name, or name~k where two parts share a name (both imported
        # from imgs.npy, say: their ids were the same)
        names = [c.name for c in self.parts]
        names = [n if names.count(n) == 1 else f"{n}~{k}" for k, n in enumerate(names)]
        self.ids = np.concatenate(
            [np.asarray([f"{n}/{i}" for i in c.ids], dtype=object) for n, c in zip(names, self.parts, strict=True)]
        )
        splits = [c.splits if c.splits is not None else np.full(len(c), None, dtype=object) for c in self.parts]
        self.splits = None if all(c.splits is None for c in self.parts) else np.concatenate(splits)

    @classmethod
    def open(cls, mix: Mix) -> Mixture:
        return cls([open_collection(p) for p in mix.paths], mix)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Mixture:
        """The mixture a run's ``data.mix`` records, each part checked unchanged since."""
        parts = []
        for part in d["parts"]:
            col = open_collection(part["path"])
            if col.fingerprint() != part["fingerprint"]:
                raise UnlabeledError(f"{col.path} changed since the run started (a collection of its --mix)")
            parts.append(col)
        last = d.get("last_weights")
        mix = Mix(tuple(p["path"] for p in d["parts"]), tuple(p["weight"] for p in d["parts"]), d.get("last", 0.0))
        return cls(parts, Mix(mix.paths, mix.weights, mix.last, None if last is None else tuple(last)))

    def to_json(self) -> dict[str, Any]:
        parts = [
            {"path": str(c.path.resolve()), "name": c.name, "fingerprint": c.fingerprint(), "weight": w}
            for c, w in zip(self.parts, self.mix.weights, strict=True)
        ]
        out: dict[str, Any] = {"parts": parts}
        if self.mix.last_weights is not None:
            out |= {"last": self.mix.last, "last_weights": list(self.mix.last_weights)}
        return out

    # -- what pretraining reads ---------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def name(self) -> str:
        return "+".join(c.name for c in self.parts)

    @property
    def modality(self) -> str:
        return self.parts[0].modality

    @property
    def is_text(self) -> bool:
        return self.parts[0].is_text

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return self.parts[0].sample_shape

    @property
    def columns(self) -> list[str]:
        return []

    def indices(self, split: str | None = None, *, exclude: str | None = None) -> np.ndarray:
        return np.concatenate(
            [c.indices(split, exclude=exclude) + o for c, o in zip(self.parts, self.offsets, strict=False)]
        )

    def get(self, positions: np.ndarray | Sequence[int]) -> np.ndarray:
        pos = np.asarray(positions, dtype=np.int64)
        part = np.searchsorted(self.offsets, pos, side="right") - 1
        out: np.ndarray | None = None
        for k in np.unique(part):
            m = part == k
            got = self.parts[k].get(pos[m] - self.offsets[k])
            if out is None:
                out = np.empty((len(pos), *got.shape[1:]), dtype=got.dtype)
            out[m] = got
        return out if out is not None else self.parts[0].get(pos)

    def iter_batches(self, positions: np.ndarray, batch_size: int):
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            yield chunk, self.get(chunk)

    def fingerprint(self) -> str:
        """Every part's content fingerprint and the shares: what a resumed run checks."""
        return hashlib.sha256(repr(sorted(self.to_json().items())).encode()).hexdigest()[:16]

    def pools(self, positions: np.ndarray) -> list[np.ndarray]:
        """Each part's share of ``positions`` (as mixture positions), each sample repeated by its
        collection's ``weight`` column where it has one (``curate``'s rehydration)."""
        pos = np.asarray(positions, dtype=np.int64)
        out = []
        for c, lo, hi in zip(self.parts, self.offsets[:-1], self.offsets[1:], strict=True):
            out.append(weighted_positions(c, pos[(pos >= lo) & (pos < hi)] - lo) + lo)
        return out

    def describe(self, pools: Sequence[np.ndarray]) -> str:
        """``a 0.9 (1,000 samples), b 0.1 (200); over the last 20% of the steps: a 0.5, b 0.5``
        (``pools``: what each collection trains on, :meth:`pools`)."""
        shares = ", ".join(
            f"{c.name} {w:.3g} ({len(p):,} samples)"
            for c, w, p in zip(self.parts, self.mix.weights, pools, strict=True)
        )
        if self.mix.last_weights is None:
            return shares
        later = ", ".join(f"{c.name} {w:.3g}" for c, w in zip(self.parts, self.mix.last_weights, strict=True))
        return f"{shares}; over the last {self.mix.last:.0%} of the steps: {later}"
