"""Typed recipes: what a run is, as frozen dataclasses that round-trip through ``config.json``.

A :class:`RunSpec` is everything needed to rebuild a run: the data it trained on (with the
collection's content fingerprint and a hash of the training ids), the fitted modality, the
encoder, the objective, the training loop's settings (:class:`TrainConfig`) and the starting
point (another run's weights, with their hash). ``pretrain``, ``finetune``, their SISA shards,
``forget``'s retraining and ``--resume`` all build one and hand it to
:func:`unlabeled.train.run.train`; nothing else passes twenty keywords around (the pattern of
Hugging Face's ``TrainingArguments`` and torchtune's typed configs).

    spec = RunSpec.from_config(run.config)          # any run, old or new
    spec.to_config() == run.config                  # exact round trip
    retrain = spec.replace(data=..., train=dataclasses.replace(spec.train, total_steps=None))

The JSON layout is the one runs have always had (``data``, ``modality``, ``encoder``,
``method``, ``train``, ``init``, ``kind``, ``task``, ``source_run``), so runs saved before the
specs existed load, resume, bench and forget unchanged; keys a spec does not model (``sisa``,
``seconds``, a forget request's record) ride along in ``extra``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled.data.collection import WEIGHT
from unlabeled.data.mixture import Mixture
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.trainer import TrainConfig

# config.json keys that say where and how a run was made, not what it is
PROVENANCE = ("unlabeled", "created", "command", "environment")


def ids_hash(ids: Iterable[object]) -> str:
    """A content hash of a set of sample ids (order-free): which samples a run trained on."""
    return hashlib.sha256("\n".join(sorted(str(i) for i in ids)).encode()).hexdigest()[:16]


def index_hash(col: Any, soft_as_ints: bool = False) -> str:
    """A content hash of a collection's index: its ids, labels (and class names), splits and
    sampling weights, what a run depends on besides the samples themselves (the collection's fingerprint).
    A collection read with a teacher's soft targets as its labels (distillation) is hashed by
    the collection beneath: the targets are the teacher's, checked by its weights' hash, and
    cast to integers they hashed as zeros, so a relabelled collection passed. ``soft_as_ints``:
    that old hash, which runs made before it recorded."""
    if isinstance(col, Mixture):  # every part's index, and the shares
        return hashlib.sha256(repr([index_hash(c) for c in col.parts] + [col.to_json()]).encode()).hexdigest()[:16]
    soft = col.labels is not None and np.issubdtype(np.asarray(col.labels).dtype, np.floating)
    if soft and hasattr(col, "collection") and not soft_as_ints:
        return index_hash(col.collection)
    h = hashlib.sha256("\n".join(str(i) for i in col.ids).encode())
    if col.labels is not None:
        h.update(np.ascontiguousarray(col.labels, dtype=np.int64).tobytes())
        h.update("\n".join(col.classes or []).encode())
    if col.splits is not None:
        h.update("\n".join(str(s) for s in col.splits).encode())
    if WEIGHT in getattr(col, "columns", ()):  # pretraining's sampling counts (curate's rehydration)
        h.update(np.ascontiguousarray(col.column(WEIGHT), dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def file_hash(path: str | Path) -> str:
    """A content hash of a file (a run's weights, as a starting point): the first 16 hex
    digits of its sha256, computed once per version of the file."""
    return ckpt.file_digest(path)[:16]


@dataclass(frozen=True)
class DataSpec:
    """The collection a run trained on: its path and name, its content fingerprint (the
    samples), how many samples it trained on and which split it left out; ``index`` hashes
    the collection's ids, labels and splits, ``ids`` the training ids when they are a subset
    (a shard, a retain set, a label draw). Runs made before these hashes have them as None."""

    path: str
    name: str
    fingerprint: str
    samples: int
    exclude_split: str | None = "test"
    index: str | None = None
    ids: str | None = None
    mix: dict[str, Any] | None = None  # pretraining on several collections (--mix): Mixture.to_json()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DataSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None or k == "exclude_split"}


@dataclass(frozen=True)
class EncoderSpec:
    """The encoder: architecture name, size, the input shape it was built for, its options,
    and which submodule of the objective's state holds its weights."""

    name: str
    size: str
    sample_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    weights: str = "encoder"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EncoderSpec:
        return cls(d["name"], d["size"], tuple(d["sample_shape"]), dict(d.get("options", {})), d.get("weights"))

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "size": self.size, "sample_shape": list(self.sample_shape), "options": self.options}
        if self.weights is not None:
            out["weights"] = self.weights
        return out


@dataclass(frozen=True)
class ObjectiveSpec:
    """The objective (``simclr``, ``mae``, ``supervised``, ...) and its settings."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ObjectiveSpec:
        return cls(d["name"], {k: v for k, v in d.items() if k != "name"})

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}


@dataclass(frozen=True)
class InitSpec:
    """The starting point: another run's weights (``run`` at ``step``), what of them was loaded
    (``every weight`` or ``the encoder``), and the hash of the weights file."""

    run: str
    step: int
    loaded: str | None = None
    weights: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


# the config.json keys a spec writes itself; what rides along in ``extra`` may not replace them
SPEC_KEYS = frozenset(
    {"kind", "data", "modality", "encoder", "method", "train", "init", "task", "source_run", *PROVENANCE}
)


@dataclass(frozen=True)
class RunSpec:
    """A whole run: ``kind`` is ``encoder`` (pretraining) or ``classifier`` (``finetune``,
    ``forget``). ``modality`` is the fitted modality's state (its normalisation statistics);
    ``task`` the labelled task of a classifier; ``source_run`` the pretrained run a classifier
    started from."""

    kind: str
    data: DataSpec
    modality: dict[str, Any]
    encoder: EncoderSpec
    objective: ObjectiveSpec
    train: TrainConfig
    init: InitSpec | None = None
    task: dict[str, Any] | None = None
    source_run: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> RunSpec:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> RunSpec:
        """The spec of a run's ``config.json`` (any run this project ever wrote)."""
        known = SPEC_KEYS
        init = config.get("init")
        return cls(
            kind=str(config.get("kind", "encoder")),
            data=DataSpec.from_json(config["data"]),
            modality=dict(config["modality"]),
            encoder=EncoderSpec.from_json(config["encoder"]),
            objective=ObjectiveSpec.from_json(config["method"]),
            train=TrainConfig(**config["train"]),
            init=None if init is None else InitSpec(**init),
            task=config.get("task"),
            source_run=config.get("source_run"),
            provenance={k: config[k] for k in PROVENANCE if k in config},
            extra={k: v for k, v in config.items() if k not in known},
        )

    def to_config(self) -> dict[str, Any]:
        """The run's ``config.json``, in the layout every reader of runs expects."""
        p = self.provenance
        out: dict[str, Any] = {k: p[k] for k in ("unlabeled", "created", "command") if k in p}
        if self.kind != "encoder":
            out["kind"] = self.kind
        if self.kind == "classifier":
            out["source_run"] = self.source_run
        if self.task is not None:
            out["task"] = self.task
        out |= {
            "data": self.data.to_json(),
            "modality": self.modality,
            "encoder": self.encoder.to_json(),
            "method": self.objective.to_json(),
            "train": asdict(self.train),
        }
        if "environment" in p:
            out["environment"] = p["environment"]
        if self.init is not None:
            out["init"] = self.init.to_json()
        return out | self.extra
