"""What a bench was asked to do, checked once: the runs, the task or suite, the label
settings, seeds, probes and baselines, and where and how to run."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled._settings import check_count
from unlabeled.bench.baselines import BASELINES
from unlabeled.bench.probes import PROBES
from unlabeled.bench.protocol import Setting
from unlabeled.data.collection import Collection
from unlabeled.runs import Run
from unlabeled.runtime import resolve_device


@dataclass(frozen=True)
class BenchRequest:
    """The options of :func:`unlabeled.bench.bench`, with the runs opened; checked on
    construction (an :class:`UnlabeledError` names the first bad option)."""

    runs: tuple[Run, ...]
    task: Collection | str | os.PathLike[str] | None = None
    suite: str | os.PathLike[str] | None = None
    fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
    shots: tuple[int, ...] = ()
    seeds: int = 3
    probes: tuple[str, ...] = ("linear", "knn", "nb")
    baselines: tuple[str, ...] = BASELINES
    # the single task's definition (a suite defines its own): see unlabeled.bench.tasks.make_task
    target: str = "label"
    kind: str | None = None
    metric: str | None = None
    group: str | None = None
    split: str = "auto"
    out: str | os.PathLike[str] | None = None
    device: str = "auto"
    n_jobs: int = 1
    data_dir: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        if not self.runs:
            raise UnlabeledError("bench needs at least one run")
        seen: set[Path] = set()
        for run in self.runs:  # two rows of one run under one name: score() could not tell them apart
            where = Path(getattr(run, "path", run)).resolve()
            if where in seen:
                raise UnlabeledError(f"{getattr(run, 'path', run)} is given twice; bench each run once")
            seen.add(where)
        resolve_device(self.device)  # before the out folder is made
        if (self.task is None) == (self.suite is None):
            raise UnlabeledError("bench takes a task (--task) or a suite (--suite), not both and not neither")
        if not self.probes:
            raise UnlabeledError(f"bench needs at least one probe; choose from {', '.join(PROBES)}")
        for p in self.probes:
            if p not in PROBES:
                raise UnlabeledError(f"unknown probe {p!r}; choose from {', '.join(PROBES)}")
        for b in self.baselines:
            if b not in BASELINES:
                raise UnlabeledError(f"unknown baseline {b!r}; choose from {', '.join(BASELINES)}")
        self._check_labels()

    def _check_labels(self) -> None:
        for f in self.fractions:
            if isinstance(f, bool) or not isinstance(f, int | float | np.integer | np.floating) or not 0 < f <= 1:
                raise UnlabeledError(f"label fractions must be numbers in (0, 1], got {f!r}")
        for k in self.shots:
            check_count(k, "shots", 1)
        if not self.fractions and not self.shots:
            raise UnlabeledError("give at least one label fraction or number of shots")
        for flag, values in (("--fractions", self.fractions), ("--shots", self.shots)):
            twice = sorted({v for v in values if list(values).count(v) > 1})
            if twice:  # a setting run twice counted twice in the unified score
                raise UnlabeledError(f"{flag} lists {', '.join(map(str, twice))} more than once; give each once")
        # a setting is keyed by its label (the cells, the cache, the table): two fractions of one
        # label were fitted as one, the second's rows holding the first's scores
        labels: dict[str, float] = {}
        for f in self.fractions:
            label = Setting(fraction=float(f)).label
            if label in labels:
                raise UnlabeledError(f"--fractions {labels[label]} and {f} are both {label}; give fractions apart")
            labels[label] = f
        check_count(self.seeds, "seeds", 1)
