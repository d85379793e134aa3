"""``bench``: what encoders are worth with few labels, on one task or a suite of tasks.

For each task and each run (and the baselines: raw features, the same encoder randomly
initialised, and the same architecture trained from scratch on the same labels), probes are
trained at every label setting (fractions of the train split, or k shots per class) and seed
(:mod:`unlabeled.bench.protocol`): frozen-feature probes on features, fine-tuning probes on
the samples themselves. Results are rows of mean ± std over seeds, with a unified score per
model across tasks, written to ``bench.json`` beside a self-contained ``report.html``.

    result = bench("runs/a", task="data/fmnist", fractions=[0.01, 0.1, 1.0], seeds=3)
    result = bench(["runs/a", "runs/b"], suite="ucr-small", out="results/")
    print(result.table())
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from unlabeled._console import UnlabeledError, info, warn
from unlabeled._settings import folder
from unlabeled.bench.baselines import BASELINES, RANDOM_INIT, RAW, SUPERVISED
from unlabeled.bench.cache import CACHE_FILE, ScoreCache
from unlabeled.bench.embedding_map import Maps
from unlabeled.bench.features import raw_features
from unlabeled.bench.jobs import MAP_POINTS, TaskPlan, bench_task, check_held_out, plan_task
from unlabeled.bench.report import write_report
from unlabeled.bench.request import BenchRequest
from unlabeled.bench.result import BenchResult, Embeddings, unified_cell_counts, unified_scores
from unlabeled.bench.suites import load_suite
from unlabeled.bench.tasks import Task, make_task, task_split
from unlabeled.data.collection import Collection, holding_collection, open_collection
from unlabeled.runs import Run, open_run
from unlabeled.train import checkpoint as ckpt

# names this module defined before the bench was split into one concept per module
__all__ = [
    "BASELINES",
    "CACHE_FILE",
    "MAP_POINTS",
    "RANDOM_INIT",
    "RAW",
    "SUPERVISED",
    "BenchResult",
    "ScoreCache",
    "bench",
    "raw_features",
    "task_split",
    "unified_scores",
]


def bench(
    runs: Run | str | os.PathLike[str] | Sequence[Run | str | os.PathLike[str]],
    task: Collection | str | os.PathLike[str] | None = None,
    *,
    suite: str | os.PathLike[str] | None = None,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    shots: Sequence[int] = (),
    seeds: int = 3,
    probes: Sequence[str] = ("linear", "knn", "nb"),
    baselines: Sequence[str] = BASELINES,
    target: str = "label",
    kind: str | None = None,
    metric: str | None = None,
    group: str | None = None,
    split: str = "auto",
    out: str | os.PathLike[str] | None = None,
    device: str = "auto",
    n_jobs: int | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> BenchResult:
    """Benchmark pretrained runs on a labelled ``task`` (or every task of a ``suite``) with
    ``probes`` at label ``fractions`` of the train split and at k ``shots`` per class,
    ``seeds`` times each; writes ``bench.json`` and ``report.html`` to ``out`` (default: the
    first run's folder).

    ``target``/``kind``/``metric``/``group``/``split`` define a single task
    (:func:`unlabeled.bench.tasks.make_task`); a suite defines its own. ``baselines``: any of
    ``raw`` (the inputs as features), ``random-init`` (the run's architecture, untrained) and
    ``supervised`` (that architecture trained from scratch on the same labels; costs one
    training per setting and seed). Frozen-feature probe fits run in ``n_jobs`` processes
    (default: one per CPU core)."""
    listed = {k: _listed(k, v) for k, v in (("fractions", fractions), ("shots", shots))}
    listed |= {k: _listed(k, v) for k, v in (("probes", probes), ("baselines", baselines))}  # before any run opens
    request = BenchRequest(
        runs=tuple(open_run(r) for r in ([runs] if isinstance(runs, Run | str | os.PathLike) else runs)),
        task=task,
        suite=suite,
        seeds=seeds,
        **listed,
        target=target,
        kind=kind,
        metric=metric,
        group=group,
        split=split,
        out=out,
        device=device,
        n_jobs=n_jobs or (os.cpu_count() or 1),
        data_dir=data_dir,
    )
    return run_bench(request)


def run_bench(request: BenchRequest) -> BenchResult:
    """:func:`bench` on a checked request."""
    suite_name, tasks = _load_tasks(request)
    notes: list[str] = []
    for run in request.runs:
        _note_unfinished(run, notes)
    for t in tasks:  # every task checked before any is benched: a refusal wastes no work
        for run in request.runs:
            check_held_out(run, t, notes)
    _check_something_to_score(tasks, request)
    out_dir = folder(request.out) if request.out is not None else request.runs[0].path
    if request.out is not None:
        _check_out(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / CACHE_FILE, "a"):  # a folder it cannot write fails now, not after the fits
        pass
    cache = ScoreCache(out_dir / CACHE_FILE)
    if cache.scores:
        info(f"bench: {len(cache.scores)} finished fits in {cache.path}; those asked for again are not redone")
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    samples: Embeddings = {}
    maps: Maps = {}
    for t in tasks:
        task_rows, task_sample, task_maps = bench_task(t, request, cache, notes, len(tasks))
        rows += task_rows
        samples.update(task_sample)
        maps.update(task_maps)
    settings = _settings(request, suite_name, tasks, notes, round(time.perf_counter() - t0, 1))
    cells = unified_cell_counts(rows)
    result = BenchResult(rows, settings, embeddings=samples, unified=unified_scores(rows), unified_cells=cells)
    result.json_path = out_dir / "bench.json"
    doc = {"settings": settings, "unified": result.unified, "unified_cells": cells, "rows": rows}
    ckpt.atomic_write_json(result.json_path, strict_json(doc))
    result.report_path = write_report(result, out_dir / "report.html", maps)
    for note in notes:
        warn(note)
    info(f"bench: {len(rows)} cells on {len(tasks)} task(s) in {settings['seconds']:.0f} s")
    info(f"wrote {result.json_path} and {result.report_path}")
    return result


def _check_something_to_score(tasks: list[Task], request: BenchRequest) -> None:
    """A bench in which no probe applies to any task (``nb`` on a regression target, ``semi``
    on text) is refused with the reasons: it wrote an empty table and exited 0."""
    reasons: list[str] = []
    plans = [plan_task(t, request, reasons) for t in tasks]  # every task's: a later one's refusal comes first
    if any(_plan_has_cells(p) for p in plans):
        return
    raise UnlabeledError("nothing to score: " + "; ".join(reasons or ["no probe and label setting apply"]))


def _plan_has_cells(plan: TaskPlan) -> bool:
    return bool(plan.settings) and bool(plan.feature_probes or plan.raw_probes)


def _note_unfinished(run: Run, notes: list[str]) -> None:
    """A run whose training stopped before its planned steps (interrupted, not resumed) is
    scored as it is, with a note: its rows are a partly trained model's."""
    state = run.path / ckpt.STATE_FILE
    if "sisa" in run.config or not state.exists():  # a sharded run's shards, a result without a resume state
        return
    s = ckpt.load_state(state)
    if s["step"] < s.get("total_steps", s["step"]):
        notes.append(
            f"{run.path} stopped at step {s['step']} of {s['total_steps']} (interrupted): its rows score a partly "
            "trained model; the command that made it, with --resume, finishes it"
        )


def strict_json(obj: Any) -> Any:
    """``obj`` with every NaN or infinite number as None (JSON's null): Python writes them as
    ``NaN``, which JSON has not, and strict readers (browsers', jq) refuse the file. An AUROC
    with one class in the test split is such a NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    return obj


BENCH_FILES = {"bench.json", "report.html", CACHE_FILE}


def _check_out(out: Path) -> None:
    """A bench's ``--out`` is new, empty, a run's folder or an earlier bench's: never a file, a
    collection or a folder of other files, which its report would be mixed into."""
    if out.exists() and not out.is_dir():
        raise UnlabeledError(f"--out {out} is a file; bench writes a folder (bench.json, report.html)")
    if holding_collection(out) is not None:
        raise UnlabeledError(f"--out {out} is or is inside a collection; write the bench elsewhere")
    if out.is_dir() and not (out / "config.json").exists():
        other = sorted(p.name for p in out.iterdir() if p.name not in BENCH_FILES and not p.name.startswith("."))
        if other:
            raise UnlabeledError(
                f"--out {out} holds files that are not a bench's ({', '.join(other[:5])}); choose a new folder"
            )


def _listed(name: str, value: Any) -> tuple[Any, ...]:
    """An argument that takes a list, as a tuple: a lone value or a string is refused (a
    string would be read as its letters)."""
    if isinstance(value, str | int | float):
        example = repr(value)
        if isinstance(value, str) and name in ("fractions", "shots"):  # "0.1,1" meant [0.1, 1]
            with contextlib.suppress(ValueError):
                example = ", ".join(repr(float(v) if name == "fractions" else int(v)) for v in value.split(","))
        raise UnlabeledError(f"{name} must be a list, got {value!r}; e.g. {name}=[{example}]")
    if value is None or not isinstance(value, Iterable):  # tuple(None) was a TypeError
        raise UnlabeledError(f"{name} must be a list, got {value!r}")
    return tuple(value)


def _load_tasks(request: BenchRequest) -> tuple[str | None, list[Task]]:
    """(the suite's name or None, the tasks), each checked against every run's modality."""
    suite_name, r = None, request
    if r.suite is not None:  # a suite defines its tasks: the single task's options are named
        given = {"--target-column": r.target != "label", "--kind": r.kind, "--metric": r.metric}
        given |= {"--group-column": r.group, "--split": r.split != "auto"}
        if ignored := [k for k, v in given.items() if v]:
            info(f"note: {', '.join(ignored)} ignored: the suite defines each of its tasks")
        loaded = load_suite(request.suite)
        suite_name = loaded.name
        tasks = loaded.load(request.data_dir)
    else:
        if r.data_dir is not None:
            info(f"note: --data-dir ignored: it is where a suite's tasks are imported; {r.task} is one collection")
        col = open_collection(request.task)
        tasks = [make_task(col, target=r.target, kind=r.kind, metric=r.metric, group=r.group, split=r.split)]
    for t in tasks:
        for run in request.runs:
            _check_modality(run, t.collection)
    return suite_name, tasks


def _check_modality(run: Run, col: Collection) -> None:
    trained_on = run.config["modality"]["name"]
    if trained_on != col.modality:
        raise UnlabeledError(
            f"run {run.path} was trained on {trained_on} samples; task {col.path} has {col.modality} samples"
        )


def _settings(
    request: BenchRequest, suite_name: str | None, tasks: list[Task], notes: list[str], seconds: float
) -> dict[str, Any]:
    """What ``bench.json`` records of how the bench ran."""
    settings = {
        "suite": suite_name,
        "runs": [str(r.path) for r in request.runs],
        "fractions": list(request.fractions),
        "shots": [int(k) for k in request.shots],
        "seeds": request.seeds,
        "probes": list(request.probes),
        "baselines": list(request.baselines),
        "tasks": {t.name: t.describe() for t in tasks},
        "notes": notes,
        "seconds": seconds,
    }
    if len(tasks) == 1:  # the single-task keys earlier versions wrote
        settings.update(
            {
                "task": str(tasks[0].collection.path),
                "split": tasks[0].split,
                "train": int(len(tasks[0].train)),
                "test": int(len(tasks[0].test)),
            }
        )
    return settings
