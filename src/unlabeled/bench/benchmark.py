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

import dataclasses
import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info, progress, warn
from unlabeled.bench.metrics import REGRESSION, higher_is_better
from unlabeled.bench.probes import PROBES, REGRESSION_PROBES
from unlabeled.bench.protocol import Score, Setting, evaluate, run_jobs
from unlabeled.bench.report import write_report
from unlabeled.bench.tasks import Task, make_task
from unlabeled.data.collection import Collection, open_collection
from unlabeled.modalities import fit_modality
from unlabeled.runs import Run, features, open_run
from unlabeled.train import checkpoint as ckpt

RAW, RANDOM_INIT, SUPERVISED = "raw", "random-init", "supervised"
CACHE_FILE = "bench-cache.jsonl"
BASELINES = (RAW, RANDOM_INIT, SUPERVISED)
MAP_POINTS = 2000  # test samples per embedding map


@dataclass
class BenchResult:
    """Rows of ``task, model, probe, setting, metric, mean, std`` (plus per-seed detail), the
    unified score per model, and test-split features for the report's embedding maps."""

    rows: list[dict[str, Any]]
    settings: dict[str, Any]
    json_path: Path | None = None
    report_path: Path | None = None
    embeddings: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)
    unified: dict[str, float] = field(default_factory=dict)

    def score(
        self,
        model: str,
        probe: str,
        fraction: float | None = None,
        *,
        shots: int | None = None,
        task: str | None = None,
    ) -> dict[str, Any]:
        """The row of ``model`` with ``probe`` at a label ``fraction`` (or ``shots``), on
        ``task`` (default: the first task)."""
        task = task or self.rows[0]["task"]
        for r in self.rows:
            if r["task"] != task or r["model"] != model or r["probe"] != probe:
                continue
            if shots is not None and r["shots"] == shots:
                return r
            if fraction is not None and r["fraction"] is not None and abs(r["fraction"] - fraction) < 1e-12:
                return r
        raise KeyError((task, model, probe, fraction, shots))

    def table(self, markdown: bool = False) -> str:
        """The results as tables, one per task, one line per model and probe: plain text, or
        Markdown (for BENCHMARKS.md and issue notes)."""
        out = []
        for task in dict.fromkeys(r["task"] for r in self.rows):
            rows = [r for r in self.rows if r["task"] == task]
            labels = list(dict.fromkeys(r["setting"] for r in sorted(rows, key=_setting_order)))
            cell = {(r["model"], r["probe"], r["setting"]): r for r in rows}
            title = f"{task} ({rows[0]['metric']}, mean ± std over seeds)"
            lines = []
            for model, probe in dict.fromkeys((r["model"], r["probe"]) for r in rows):
                vals = [cell.get((model, probe, lab)) for lab in labels]
                lines.append((model, probe, ["-" if v is None else f"{v['mean']:.4f} ± {v['std']:.4f}" for v in vals]))
            if markdown:
                out += [title, "", "| model | probe | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
                out += [f"| {m} | {p} | " + " | ".join(texts) + " |" for m, p, texts in lines]
            else:
                width = max([24, *(len(r["model"]) + 2 for r in rows)])
                head = f"{'model':<{width}}{'probe':<10}" + "".join(f"{lab:>18}" for lab in labels)
                out += [title, head, "-" * len(head)]
                out += [f"{m:<{width}}{p:<10}" + "".join(f"{t:>18}" for t in texts) for m, p, texts in lines]
            out.append("")
        if self.unified:
            out.append("unified score (0 = raw features, 1 = best in each cell; mean over tasks, probes, settings)")
            ranked = sorted(self.unified.items(), key=lambda kv: -kv[1])
            if markdown:
                out += ["", "| model | unified score |", "|---|---|"] + [f"| {m} | {v:.3f} |" for m, v in ranked]
            else:
                out += [f"  {m:<{22}} {v:.3f}" for m, v in ranked]
        return "\n".join(out).rstrip()


class ScoreCache:
    """Finished probe fits of an interrupted bench, in ``OUT/bench-cache.jsonl``, one line
    per fit, keyed by everything its score depends on (the task's data, split and target, the
    model's weights, the probe, the setting, the seed); a rerun into the same ``out`` skips
    them. Lines are appended and flushed as fits finish, so a kill loses at most the fits in
    flight; a torn last line is ignored."""

    VERSION = 1  # bump when the protocol changes what a score means

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, Score] = {}
        if path.exists():
            good = []
            for line in path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                    self.scores[entry["key"]] = Score(**entry["score"])
                    good.append(line)
                except (ValueError, KeyError, TypeError):
                    continue
            ckpt.atomic_write_text(path, "".join(f"{line}\n" for line in good))  # without a torn tail

    @classmethod
    def key(cls, *parts: Any) -> str:
        return hashlib.sha256(json.dumps([cls.VERSION, *parts], default=str).encode()).hexdigest()[:24]

    def add(self, key: str, score: Score) -> None:
        self.scores[key] = score
        with open(self.path, "a") as f:
            f.write(json.dumps({"key": key, "score": dataclasses.asdict(score)}, default=_jsonable) + "\n")
            f.flush()


def _setting_order(r: dict[str, Any]) -> tuple[int, float]:
    return (0, r["shots"]) if r["shots"] is not None else (1, r["fraction"])


def task_split(col: Collection) -> tuple[np.ndarray, np.ndarray, str]:
    """(train positions, test positions, how the split was made) among labelled samples."""
    t = make_task(col)
    return t.train, t.test, t.split


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
    return [f"{r.path.parent.name}/{r.name}" if names.count(r.name) > 1 else r.name for r in runs]


def _arch(run: Run) -> str:
    return f"{run.config['encoder']['name']}-{run.config['encoder']['size']}"


def _job(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    probe: str,
    setting: Setting,
    seed: int,
    kind: str,
    metric: str,
    groups: np.ndarray | None,
    context: dict[str, Any] | None,
) -> Score:
    return evaluate(
        X_train, y_train, X_test, y_test, probe, setting, seed, kind=kind, metric=metric, groups=groups, context=context
    )


def _raw_samples(run: Run, task: Task, positions: np.ndarray) -> np.ndarray | None:
    """The task's samples as the run's encoder takes them, or None when one sample becomes
    several (channel-independent series), which the fine-tuning probes do not handle."""
    mod, col = run.modality(), task.collection
    source = fit_modality(col, task.train)
    if mod.adapt_factor(source) != 1:
        return None
    return mod.adapt(col.get(positions), source)


def _check_modality(run: Run, col: Collection) -> None:
    trained_on = run.config["modality"]["name"]
    if trained_on != col.modality:
        raise UnlabeledError(
            f"run {run.path} was trained on {trained_on} samples; task {col.path} has {col.modality} samples"
        )


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
    run_list = [open_run(r) for r in ([runs] if isinstance(runs, Run | str | os.PathLike) else runs)]
    if not run_list:
        raise UnlabeledError("bench needs at least one run")
    if (task is None) == (suite is None):
        raise UnlabeledError("bench takes a task (--task) or a suite (--suite), not both and not neither")
    for p in probes:
        if p not in PROBES:
            raise UnlabeledError(f"unknown probe {p!r}; choose from {', '.join(PROBES)}")
    for b in baselines:
        if b not in BASELINES:
            raise UnlabeledError(f"unknown baseline {b!r}; choose from {', '.join(BASELINES)}")
    for f in fractions:
        if not 0 < f <= 1:
            raise UnlabeledError(f"label fractions must be in (0, 1], got {f}")
    for k in shots:
        if int(k) < 1:
            raise UnlabeledError(f"shots must be at least 1, got {k}")
    if not fractions and not shots:
        raise UnlabeledError("give at least one label fraction or number of shots")
    if seeds < 1:
        raise UnlabeledError(f"seeds must be at least 1, got {seeds}")
    suite_name = None
    if suite is not None:
        from unlabeled.bench.suites import load_suite

        loaded = load_suite(suite)
        suite_name = loaded.name
        tasks = loaded.load(data_dir)
    else:
        tasks = [make_task(open_collection(task), target=target, kind=kind, metric=metric, group=group, split=split)]
    for t in tasks:
        for run in run_list:
            _check_modality(run, t.collection)

    out_dir = Path(out) if out is not None else run_list[0].path
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = ScoreCache(out_dir / CACHE_FILE)
    if cache.scores:
        info(f"bench: {len(cache.scores)} finished fits found in {cache.path}; they are not redone")
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    maps: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    notes: list[str] = []
    for t in tasks:
        task_rows, task_maps = _bench_task(
            t,
            run_list,
            fractions,
            shots,
            seeds,
            probes,
            baselines,
            device,
            n_jobs or (os.cpu_count() or 1),
            notes,
            cache,
        )
        rows += task_rows
        maps.update(task_maps)
    settings = {
        "suite": suite_name,
        "runs": [str(r.path) for r in run_list],
        "fractions": list(fractions),
        "shots": [int(k) for k in shots],
        "seeds": seeds,
        "probes": list(probes),
        "baselines": list(baselines),
        "tasks": {t.name: t.describe() for t in tasks},
        "notes": notes,
        "seconds": round(time.perf_counter() - t0, 1),
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
    result = BenchResult(rows, settings, embeddings=maps, unified=unified_scores(rows))
    result.json_path = out_dir / "bench.json"
    ckpt.atomic_write_json(result.json_path, {"settings": settings, "unified": result.unified, "rows": rows})
    result.report_path = write_report(result, out_dir / "report.html")
    for note in notes:
        warn(note)
    info(f"bench: {len(rows)} cells on {len(tasks)} task(s) in {settings['seconds']:.0f} s")
    info(f"wrote {result.json_path} and {result.report_path}")
    return result


def _bench_task(
    task: Task,
    run_list: list[Run],
    fractions: Sequence[float],
    shots: Sequence[int],
    seeds: int,
    probes: Sequence[str],
    baselines: Sequence[str],
    device: str,
    n_jobs: int,
    notes: list[str],
    cache: ScoreCache,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]]:
    col, kind = task.collection, task.kind
    table = REGRESSION_PROBES if kind == REGRESSION else PROBES
    usable = [p for p in probes if p in table]
    for p in set(probes) - set(usable):
        notes.append(f"{task.name}: probe {p} has no {kind} form; skipped")
    settings = [Setting(fraction=float(f)) for f in fractions]
    if kind == REGRESSION and shots:
        notes.append(f"{task.name}: k-shot settings need classes; skipped for this regression task")
    else:
        settings += [Setting(shots=int(k)) for k in shots]
    feature_probes = [p for p in usable if table[p].inputs == "features"]
    raw_probes = [p for p in usable if table[p].inputs == "raw"]
    both = np.concatenate([task.train, task.test])
    n_train = len(task.train)

    # (model, baseline?, features or None, raw-probe context or None)
    models: list[tuple[str, bool, np.ndarray | None, dict[str, Any] | None]] = []
    task_id = (task.name, col.fingerprint(), task.split, task.target, task.metric, int(len(task.train)))
    if RAW in baselines and feature_probes:
        models.append((RAW, True, raw_features(col, both, fit_on=task.train), None))
    archs: dict[str, Run] = {}
    for run, name in zip(run_list, _model_names(run_list), strict=True):
        feats = features(run, col, both, device=device) if feature_probes else None
        models.append((name, False, feats, {"run": str(run.path), "trained": True, "device": device}))
        archs.setdefault(_arch(run), run)
    for i, (arch, run) in enumerate(archs.items()):
        suffix = "" if i == 0 else f":{arch}"
        if RANDOM_INIT in baselines and feature_probes:
            models.append((RANDOM_INIT + suffix, True, run.encode(col, both, trained=False, device=device), None))
        if SUPERVISED in baselines:
            models.append((SUPERVISED + suffix, True, None, {"run": str(run.path), "trained": False, "device": device}))

    feature_cells: list[tuple[str, str, Setting]] = []
    raw_cells: list[tuple[str, str, Setting]] = []
    feature_jobs, raw_jobs = [], []
    raw_cache: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    for model, _, feats, ctx in models:
        for probe in feature_probes if feats is not None else []:
            for s in settings:
                feature_cells.append((model, probe, s))
                feature_jobs += [
                    (
                        feats[:n_train],
                        task.y_train,
                        feats[n_train:],
                        task.y_test,
                        probe,
                        s,
                        seed,
                        kind,
                        task.metric,
                        task.groups_train,
                        None,
                    )
                    for seed in range(seeds)
                ]
        if ctx is None:
            continue
        model_probes = ["finetune"] if model.startswith(SUPERVISED) else raw_probes
        if not model_probes:
            continue
        if ctx["run"] not in raw_cache:
            run = open_run(ctx["run"])
            raw = _raw_samples(run, task, both)
            raw_cache[ctx["run"]] = None if raw is None else (raw[:n_train], raw[n_train:])
            if raw is None:
                notes.append(
                    f"{task.name}: fine-tuning probes skipped: its samples become several per sample for "
                    f"{run.path}'s encoder (one channel at a time)"
                )
        arrays = raw_cache[ctx["run"]]
        if arrays is None:
            continue
        for probe in model_probes:
            for s in settings:
                raw_cells.append((model, probe, s))
                raw_jobs += [
                    (
                        arrays[0],
                        task.y_train,
                        arrays[1],
                        task.y_test,
                        probe,
                        s,
                        seed,
                        kind,
                        task.metric,
                        task.groups_train,
                        ctx,
                    )
                    for seed in range(seeds)
                ]

    identity = {m: _identity(m, ctx, run_list) for m, _, _, ctx in models}
    jobs = feature_jobs + raw_jobs
    keys = [
        ScoreCache.key(task_id, identity[m], p, s.label, seed)
        for m, p, s in feature_cells + raw_cells
        for seed in range(seeds)
    ]
    scores: list[Score | None] = [cache.scores.get(k) for k in keys]
    todo = [i for i in range(len(feature_jobs)) if scores[i] is None]
    todo.sort(key=lambda i: -(jobs[i][5].fraction or 0))  # the largest fits first: the workers finish together
    todo_raw = [i for i in range(len(feature_jobs), len(jobs)) if scores[i] is None]
    with progress() as bar:
        bar_id = bar.add_task(f"bench {task.name}", total=len(jobs), completed=len(jobs) - len(todo) - len(todo_raw))

        def done(indices: list[int]) -> Any:
            def record(j: int, score: Score) -> None:
                scores[indices[j]] = score
                cache.add(keys[indices[j]], score)
                bar.advance(bar_id)

            return record

        run_jobs(_job, [jobs[i] for i in todo], n_jobs, done(todo))
        # fine-tuning trains with every core already; one fit at a time
        run_jobs(_job, [jobs[i] for i in todo_raw], 1, done(todo_raw))

    baseline_of = {m: b for m, b, _, _ in models}
    rows = []
    for i, (model, probe, s) in enumerate(feature_cells + raw_cells):  # the order of ``scores``
        cell = scores[i * seeds : (i + 1) * seeds]
        values = np.array([c.value for c in cell])
        names = cell[0].metrics.keys()
        rows.append(
            {
                "task": task.name,
                "model": model,
                "baseline": baseline_of[model],
                "probe": probe,
                "setting": s.label,
                "fraction": s.fraction,
                "shots": s.shots,
                "metric": task.metric,
                "higher_is_better": higher_is_better(task.metric),
                "mean": float(np.nanmean(values)),
                "std": float(np.nanstd(values)),
                "scores": values.tolist(),
                "metrics": {
                    m: {
                        "mean": float(np.nanmean([c.metrics[m] for c in cell])),
                        "std": float(np.nanstd([c.metrics[m] for c in cell])),
                    }
                    for m in names
                },
                "n_labels": cell[0].n_labels,
                "params": [_jsonable(c.param) for c in cell],
            }
        )

    # test-split features for the embedding maps, at most MAP_POINTS, the same samples for every model
    pick = np.sort(np.random.default_rng(0).choice(len(task.test), min(MAP_POINTS, len(task.test)), replace=False))
    maps = {
        (task.name, m): (feats[n_train:][pick], task.y_test[pick]) for m, _, feats, _ in models if feats is not None
    }
    return rows, maps


def _identity(model: str, ctx: dict[str, Any] | None, runs: list[Run]) -> list[Any]:
    """What a model's scores depend on besides the task: its weights (path and step) and,
    for baselines, which architecture."""
    if ctx is not None:
        run = open_run(ctx["run"])
        return [model, str(run.path.resolve()), run.step, ctx["trained"]]
    if model == RAW:
        return [model]
    arch_run = next((r for r in runs if model == RANDOM_INIT or model.endswith(_arch(r))), runs[0])
    return [model, str(arch_run.path.resolve()), arch_run.config["train"]["seed"]]


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def unified_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Per model, the mean over its cells (task × probe × setting) of the primary metric
    normalised so that the raw-feature baseline scores 0 and the best model in the cell 1
    (signs flipped for lower-is-better metrics). Where raw features are themselves the best,
    the scale runs from the worst model (-1) to raw (0) instead, so falling short of raw
    features always costs; values are clipped to [-1, 1]. The raw reference of a cell is raw
    features with the same probe, or, for probes raw features cannot take (fine-tuning), raw
    features' best probe at that setting; cells without one are left out."""
    by_cell: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if np.isfinite(r["mean"]):
            by_cell[(r["task"], r["probe"], r["setting"])].append(r)
    raw_best: dict[tuple[str, str], float] = {}
    for (task, _, setting), members in by_cell.items():
        for r in members:
            if r["model"] == RAW:
                sign = 1 if r["higher_is_better"] else -1
                prev = raw_best.get((task, setting))
                if prev is None or sign * r["mean"] > sign * prev:
                    raw_best[(task, setting)] = r["mean"]
    per_model: dict[str, list[float]] = defaultdict(list)
    for (task, _, setting), members in by_cell.items():
        raw = next((r["mean"] for r in members if r["model"] == RAW), raw_best.get((task, setting)))
        if raw is None:
            continue
        sign = 1 if members[0]["higher_is_better"] else -1
        values = {r["model"]: sign * r["mean"] for r in members}
        ref = sign * raw
        best, worst = max([*values.values(), ref]), min([*values.values(), ref])
        scale = best - ref if best > ref else ref - worst
        for model, v in values.items():
            per_model[model].append(float(np.clip((v - ref) / scale, -1, 1)) if scale > 0 else 0.0)
    return {m: float(np.mean(v)) for m, v in per_model.items()}
