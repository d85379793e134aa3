"""``bench``: what an encoder is worth with few labels.

For each run (and the baselines: raw features, and the same encoder randomly initialised),
frozen features of the task's train and test splits go through every probe at every label
fraction and seed (:mod:`unlabeled.bench.protocol`). Results are rows of mean ± std over
seeds, written to ``bench.json`` beside a self-contained ``report.html``.

    result = bench("runs/a", task="data/fmnist", fractions=[0.01, 0.1, 1.0], seeds=3)
    print(result.table())
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info, progress
from unlabeled.bench.probes import PROBES
from unlabeled.bench.protocol import evaluate, run_jobs
from unlabeled.bench.report import write_report
from unlabeled.data.collection import NO_LABEL, Collection, open_collection
from unlabeled.data.splits import stratified_split
from unlabeled.modalities import fit_modality
from unlabeled.runs import Run, features, open_run
from unlabeled.train import checkpoint as ckpt

RAW, RANDOM_INIT = "raw", "random-init"


@dataclass
class BenchResult:
    """Rows of ``task, model, probe, fraction, metric, mean, std`` (plus per-seed detail)."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    json_path: Path | None = None
    report_path: Path | None = None
    embeddings: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def score(self, model: str, probe: str, fraction: float) -> dict[str, Any]:
        for r in self.rows:
            if r["model"] == model and r["probe"] == probe and abs(r["fraction"] - fraction) < 1e-12:
                return r
        raise KeyError((model, probe, fraction))

    def table(self) -> str:
        """The results as a plain-text table, one line per model and probe."""
        fractions = sorted({r["fraction"] for r in self.rows})
        width = max([24, *(len(r["model"]) + 2 for r in self.rows)])
        head = f"{'model':<{width}}{'probe':<8}" + "".join(f"{_pct(f):>16}" for f in fractions)
        lines = [head, "-" * len(head)]
        keys = list(dict.fromkeys((r["model"], r["probe"]) for r in self.rows))
        for model, probe in keys:
            cells = []
            for f in fractions:
                try:
                    r = self.score(model, probe, f)
                    cells.append(f"{r['mean']:.4f} ± {r['std']:.4f}")
                except KeyError:
                    cells.append("-")
            lines.append(f"{model:<{width}}{probe:<8}" + "".join(f"{c:>16}" for c in cells))
        return "\n".join(lines)


def _pct(f: float) -> str:
    return f"{f * 100:g}% labels"


def task_split(col: Collection) -> tuple[np.ndarray, np.ndarray, str]:
    """(train positions, test positions, how the split was made) among labelled samples."""
    if not col.has_labels():
        raise UnlabeledError(f"task {col.path} has no labels; import a labelled collection as --task")
    labelled = col.labels != NO_LABEL
    if col.splits is not None and {"train", "test"} <= set(col.splits[labelled]):
        train = np.flatnonzero(labelled & (col.splits == "train"))
        test = np.flatnonzero(labelled & (col.splits == "test"))
        return train, test, "the collection's train/test split"
    pos = np.flatnonzero(labelled)
    fit, held = stratified_split(col.labels[pos], 0.2, seed=0)
    return pos[fit], pos[held], "stratified 80/20 split of the labelled samples, seed 0"


def raw_features(col: Collection, positions: np.ndarray, fit_on: np.ndarray | None = None) -> np.ndarray:
    """The raw-input baseline: what the encoder would be given (normalised pixels, series,
    log-mel spectrograms, voxels), flattened to vectors; padding becomes 0. The
    normalisation is fitted on ``fit_on`` (the train split)."""
    mod = fit_modality(col, fit_on)
    out = []
    for start in range(0, len(positions), 1024):
        x = mod.normalize(mod.prepare(col.get(positions[start : start + 1024])))
        out.append(torch.nan_to_num(x).flatten(1).numpy())
    return np.concatenate(out).astype(np.float32)


def _model_names(runs: list[Run]) -> list[str]:
    names = [r.name for r in runs]
    return [
        f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs
    ]


def bench(
    runs: Run | str | os.PathLike[str] | Sequence[Run | str | os.PathLike[str]],
    task: Collection | str | os.PathLike[str],
    *,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    seeds: int = 3,
    probes: Sequence[str] = ("linear", "knn", "nb"),
    baselines: bool = True,
    out: str | os.PathLike[str] | None = None,
    device: str = "auto",
    n_jobs: int | None = None,
) -> BenchResult:
    """Benchmark pretrained runs on a labelled task with frozen-feature probes at label
    ``fractions`` of the train split, ``seeds`` times each; writes ``bench.json`` and
    ``report.html`` to ``out`` (default: the first run's folder). Probe fits run in
    ``n_jobs`` processes (default: one per CPU core)."""
    run_list = [open_run(r) for r in ([runs] if isinstance(runs, Run | str | os.PathLike) else runs)]
    if not run_list:
        raise UnlabeledError("bench needs at least one run")
    col = open_collection(task)
    for p in probes:
        if p not in PROBES:
            raise UnlabeledError(f"unknown probe {p!r}; choose from {', '.join(PROBES)}")
    for f in fractions:
        if not 0 < f <= 1:
            raise UnlabeledError(f"label fractions must be in (0, 1], got {f}")
    if seeds < 1:
        raise UnlabeledError(f"seeds must be at least 1, got {seeds}")
    train, test, split_note = task_split(col)
    y_train, y_test = col.labels[train], col.labels[test]
    both = np.concatenate([train, test])

    feats: dict[str, np.ndarray] = {}
    if baselines:
        feats[RAW] = raw_features(col, both, fit_on=train)
    seen_arch: set[str] = set()
    for run, name in zip(run_list, _model_names(run_list), strict=True):
        trained_on = run.config["modality"]
        if trained_on["name"] != col.modality or tuple(trained_on["sample_shape"]) != col.sample_shape:
            raise UnlabeledError(
                f"run {run.path} was trained on {trained_on['name']} samples of shape {trained_on['sample_shape']}, "
                f"task {col.path} has {col.modality} samples of shape {list(col.sample_shape)}"
            )
        feats[name] = features(run, col, both, device=device)
        arch = f"{run.config['encoder']['name']}-{run.config['encoder']['size']}"
        if baselines and arch not in seen_arch:
            seen_arch.add(arch)
            key = RANDOM_INIT if len(seen_arch) == 1 else f"{RANDOM_INIT}:{arch}"
            feats[key] = run.encode(col, both, trained=False, device=device)

    n_train = len(train)
    # the largest fits first, so that the worker processes finish together
    cells = sorted(((m, p, f) for m in feats for p in probes for f in fractions), key=lambda c: -c[2])
    jobs = [(feats[m][:n_train], y_train, feats[m][n_train:], y_test, p, f, seed) for m, p, f in cells
            for seed in range(seeds)]  # fmt: skip
    t0 = time.perf_counter()
    with progress() as bar:
        task_id = bar.add_task("bench", total=len(jobs))
        scores = run_jobs(evaluate, jobs, n_jobs or (os.cpu_count() or 1), lambda: bar.advance(task_id))
    by_cell = {c: scores[i * seeds : (i + 1) * seeds] for i, c in enumerate(cells)}
    rows = []
    for model, probe, fraction in ((m, p, f) for m in feats for p in probes for f in fractions):
        cell = by_cell[(model, probe, fraction)]
        values = np.array([s.value for s in cell])
        rows.append({
            "task": col.name, "model": model, "probe": probe, "fraction": fraction,
            "metric": "accuracy", "mean": float(values.mean()), "std": float(values.std()),
            "n_labels": cell[0].n_labels, "scores": values.tolist(), "params": [s.param for s in cell],
        })  # fmt: skip
    settings = {
        "task": str(col.path), "runs": [str(r.path) for r in run_list], "fractions": list(fractions),
        "seeds": seeds, "probes": list(probes), "split": split_note, "train": int(n_train),
        "test": int(len(test)), "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    result = BenchResult(rows, settings, embeddings=feats)
    out_dir = Path(out) if out is not None else run_list[0].path
    out_dir.mkdir(parents=True, exist_ok=True)
    result.json_path = out_dir / "bench.json"
    ckpt.atomic_write_json(result.json_path, rows)
    result.report_path = write_report(result, out_dir / "report.html")
    info(f"bench: {len(jobs)} probe fits in {settings['seconds']:.0f} s")
    info(f"wrote {result.json_path} and {result.report_path}")
    return result


def load_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())
