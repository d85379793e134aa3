"""The job graph of one bench task: a cell per (model, probe, label setting), a probe fit per
cell and seed; fits already in the score cache are skipped, the others run (frozen-feature
probes over worker processes, fine-tuning one at a time), and each cell becomes a result row
of mean ± std over seeds."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from unlabeled._console import UnlabeledError, progress
from unlabeled.bench.baselines import BASELINES, MINIROCKET
from unlabeled.bench.cache import ScoreCache
from unlabeled.bench.embedding_map import TSNE_POINT_BUDGET, Maps, embedding_panels, map_features, tsne_2d
from unlabeled.bench.features import Model, identity, raw_samples, task_models
from unlabeled.bench.metrics import REGRESSION, higher_is_better
from unlabeled.bench.probes import PROBES, REGRESSION_PROBES
from unlabeled.bench.protocol import ProbeData, Score, Setting, fit_and_score, run_jobs
from unlabeled.bench.request import BenchRequest
from unlabeled.bench.result import Embeddings, jsonable
from unlabeled.bench.tasks import Task, labelled_positions
from unlabeled.data.splits import tally
from unlabeled.runs import Run, count_trained, open_run

MAP_POINTS = 2000  # test samples per embedding map

Cell = tuple[str, str, Setting]  # (model, probe, label setting)
Job = tuple[ProbeData, str, Setting, int, dict[str, Any] | None]  # the arguments of _job


@dataclass(frozen=True)
class TaskPlan:
    """What runs on one task: its label settings and the probes that take features or raw
    samples (those with a form for the task's kind)."""

    task: Task
    settings: tuple[Setting, ...]
    feature_probes: tuple[str, ...]
    raw_probes: tuple[str, ...]
    seeds: int
    # settings where every seed draws the same labelled samples (100% of the labels): a
    # frozen-feature probe is fitted there once, and its row holds that one score
    alike: frozenset[Setting] = frozenset()

    @property
    def n_train(self) -> int:
        return len(self.task.train)


def _nan_stat(stat: Any, values: Any) -> float:
    """``stat`` (np.nanmean, np.nanstd) of ``values``, NaN where every value is (an AUROC
    undefined on every seed), without numpy's "Mean of empty slice" warning reaching the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stat(np.asarray(values, dtype=np.float64)))


def plan_task(task: Task, request: BenchRequest, notes: list[str]) -> TaskPlan:
    """The task's plan; what it cannot run goes to ``notes``."""
    table = REGRESSION_PROBES if task.kind == REGRESSION else PROBES
    usable = [p for p in request.probes if p in table]
    for p in set(request.probes) - set(usable):
        notes.append(f"{task.name}: probe {p} has no {task.kind} form; skipped")
    settings = [Setting(fraction=float(f)) for f in request.fractions]
    if task.kind != REGRESSION:
        _note_raised_fractions(task, request.fractions, notes)
        unlearnt = np.setdiff1d(np.unique(task.y_test), np.unique(task.y_train))
        if len(unlearnt) and np.isin(task.y_test, unlearnt).all():  # every score would be 0 by construction
            raise UnlabeledError(
                f"{task.name}: no test sample is of a class the train split labels ({len(unlearnt)} test "
                "class(es), none in train): nothing can be scored; split the task otherwise (--split, --group-column)"
            )
        if len(unlearnt):
            notes.append(
                f"{task.name}: {len(unlearnt)} class(es) of the test split have no train sample; "
                "no probe can predict them, and their test samples count as errors"
            )
        untested = np.setdiff1d(np.unique(task.y_train), np.unique(task.y_test))
        if len(untested):
            one = len(np.unique(task.y_test)) < 2
            notes.append(
                f"{task.name}: {len(untested)} class(es) have no test sample; the scores are over the classes "
                f"the test split holds" + (" (one: its AUROC is undefined, null in bench.json)" if one else "")
            )
    if task.kind == REGRESSION and request.shots:
        notes.append(f"{task.name}: k-shot settings need classes; skipped for this regression task")
    else:
        settings += [Setting(shots=int(k)) for k in request.shots]
        fewest = int(np.unique(task.y_train, return_counts=True)[1].min()) if request.shots else 0
        over = [int(k) for k in request.shots if k > fewest]
        if over:
            notes.append(
                f"{task.name}: its smallest class has {fewest} labelled train samples: the "
                f"{', '.join(f'{k}-shot' for k in over)} setting(s) use all of that class's samples"
            )
    col = task.collection
    if col.splits is not None and task.split.startswith("the collection's"):
        labelled = labelled_positions(col, task.target, task.kind)  # unlabelled samples would not be used anyway
        others = [v for v in col.splits[labelled] if v not in ("train", "test", None)]
        if others:
            held = tally(others)
            notes.append(
                f"{task.name}: split(s) {held} are neither train nor test: left out (the probes choose their "
                "settings on a carve-out of train; name them train to use them)"
            )
    asked = MINIROCKET in request.baselines and request.baselines != BASELINES  # named, not the default set
    if asked and not (col.modality == "series" and col.sample_shape[-1] >= 9):
        why = "series tasks" if col.modality != "series" else "series of at least 9 steps (its kernels' length)"
        notes.append(f"{task.name}: baseline {MINIROCKET} applies to {why}; no {MINIROCKET} row")
    if "semi" in usable and task.collection.is_text:  # as selftrain refuses it
        usable.remove("semi")
        notes.append(f"{task.name}: probe semi (FixMatch) needs a weak and a strong view; text has none: skipped")
    feature_probes = tuple(p for p in usable if table[p].inputs == "features")
    raw_probes = tuple(p for p in usable if table[p].inputs == "raw")
    seeds = range(request.seeds)
    alike = frozenset(s for s in settings if request.seeds > 1 and s.draws_alike(task.y_train, task.kind, seeds))
    return TaskPlan(task, tuple(settings), feature_probes, raw_probes, request.seeds, alike)


def _note_raised_fractions(task: Task, fractions: tuple[float, ...], notes: list[str]) -> None:
    """A fraction draws at least one label of each class: where that is more than the fraction
    asked for (0.0001 of 1,438 digits drew 10 labels, 0.7%), the table's column says less than it
    holds, and a note says so."""
    counts = np.unique(task.y_train, return_counts=True)[1]
    for f in fractions:
        if f >= 1:
            continue
        drawn = int(sum(max(1, round(f * c)) for c in counts))
        if drawn > 1.5 * f * len(task.y_train) + 1:
            notes.append(
                f"{task.name}: a fraction of {f:g} draws at least one label of each class: {drawn} labels, "
                f"{drawn / len(task.y_train):.2%} of the labelled train samples, not {f:.2%}"
            )


def bench_task(
    task: Task, request: BenchRequest, cache: ScoreCache, notes: list[str], tasks: int = 1
) -> tuple[list[dict[str, Any]], Embeddings, Maps]:
    """One task's result rows, its test-split features for the embedding maps and the maps
    themselves (t-SNE of each model's panel, ``tasks`` tasks sharing the maps' point budget);
    skipped work is explained in ``notes``. The maps are computed by the workers that fit
    the probes, beside them: one t-SNE a panel, single-threaded, was most of the demo's bench
    after its fits when they ran one after another once the fits were done."""
    plan = plan_task(task, request, notes)
    models = task_models(task, request, bool(plan.feature_probes))
    feature_cells, feature_jobs = _feature_jobs(plan, models, notes)
    raw_cells, raw_jobs = _raw_jobs(plan, models, notes)
    # keyed by content: the task's samples, split and targets, and each model's weights
    task_id = task.digest()
    ids = {m.name: identity(m, request.runs) for m in models}
    cells = feature_cells + raw_cells
    keys = [ScoreCache.key(task_id, ids[m], p, s.label, seed) for m, p, s in cells for seed in range(plan.seeds)]
    sample = _embedding_sample(plan, models)
    panels = embedding_panels(sample, [task.name], [m.name for m in models], TSNE_POINT_BUDGET // max(1, tasks))
    panel = panels.get(task.name, {})
    to_map = [x for x, _ in panel.values()]
    scores, coords = _run(feature_jobs, raw_jobs, keys, cache, request.n_jobs, task.name, to_map, plan.alike)
    maps = {task.name: {m: (c, y) for (m, (_, y)), c in zip(panel.items(), coords, strict=True)}} if panel else {}
    baseline_of = {m.name: m.baseline for m in models}
    rows = []
    for i, cell in enumerate(cells):
        cell_scores = scores[i * plan.seeds : (i + 1) * plan.seeds]  # the order of scores
        one_fit = cell[2] in plan.alike and cell[1] in plan.feature_probes  # see _cell_job
        rows.append(_row(plan, cell, baseline_of[cell[0]], cell_scores[:1] if one_fit else cell_scores))
    return rows, sample, maps


def check_held_out(run: Run, task: Task, notes: list[str]) -> None:
    """Refuse to score a run that was trained with labels on the task's test samples (it, or
    a run it started from); a note where one was pretrained on their inputs without labels,
    and where a classifier learnt labels beyond the bench's settings. Samples are matched by
    id on the task's collection and by content on any other (the same images imported twice),
    as forgetting matches them. Scores on samples a model learnt from are not held-out scores.
    The runs a run came from are checked too: the one it started from and a student's teacher
    (whose labels its soft labels carry)."""
    visited: set[str] = set()
    todo = [run]
    while todo:
        run = todo.pop()
        if str(run.path) in visited:
            continue
        visited.add(str(run.path))
        try:
            (test,) = count_trained(run, task.collection, task.test)
            with_labels, labelled = count_trained(run, task.collection, task.test, task.train, labelled=True)
        except UnlabeledError as e:  # its collection moved, say: scored, with a note
            notes.append(f"{task.name}: could not check what {run.path} was trained on ({e})")
        else:
            _held_out_notes(run, task, (test, with_labels), labelled, notes)
        todo += _came_from(run)


def _held_out_notes(run: Run, task: Task, test: tuple[int, int], labelled: int, notes: list[str]) -> None:
    """:func:`check_held_out`'s verdict on one run of the chain: it trained on ``test[0]`` of
    the task's test samples (``test[1]`` of them with their labels) and ``labelled`` of its
    train samples."""
    n_test, (overlap, with_labels) = len(task.test), test
    if overlap and run.kind == "classifier":
        how = (
            ", with their labels"
            if with_labels == overlap
            else f" ({with_labels} with their labels, the rest with pseudo-labels or a teacher's soft labels)"
        )
        raise UnlabeledError(
            f"{run.path} was trained on {overlap} of task {task.name}'s {n_test} test samples{how}: "
            "its scores would not be held-out; train it on the train split "
            "(a collection without one: import it with a `split` column, or train/ and test/ folders)"
        )
    if overlap:
        notes.append(
            f"{task.name}: {run.path} was pretrained on {overlap} of its {n_test} test samples "
            "(their inputs, without labels)"
        )
    if run.kind == "classifier" and labelled:  # its encoder learnt those labels: few-label rows are not few-label
        notes.append(
            f"{task.name}: {run.path} is a classifier trained on {labelled} of its labelled train samples; "
            "its rows at fewer labels are not few-label results"
        )


def _came_from(run: Run) -> list[Run]:
    """The runs ``run`` came from that are still there: the one it started from (a
    classifier's pretrained encoder, an ``--init`` run) and a distilled student's teacher."""
    started = run.config.get("source_run") or (run.config.get("init") or {}).get("run")
    teacher = (run.config.get("teacher") or {}).get("run") if run.kind == "classifier" else None
    return [open_run(p) for p in (started, teacher) if p and (Path(p) / "config.json").exists()]


def _job(data: ProbeData, probe: str, setting: Setting, seed: int, context: dict[str, Any] | None) -> Score:
    return fit_and_score(data, probe, setting, seed, context)


def _cell_job(data: ProbeData, probe: str, setting: Setting, seeds: tuple[int, ...], once: bool) -> list[Score]:
    """A frozen-feature cell's seeds in one job, so that seeds with the same labelled subset
    and choice share one refit and one test-split score, and each seed's fit starts from the
    one before where the probe can (see ``fit_and_score``'s memo and warm).

    ``once``: every seed draws the same labelled samples (100% of the labels; the plan's
    ``alike``), so the cell is fitted once, with the first seed's validation carve-out, and
    that score stands for every seed:
    the seeds would vary nothing but the carve-out, and at 100% those fits were most of the
    demo's bench (the kNN search of a 20% carve-out against the rest, once per seed)."""
    memo: dict[Any, Score] = {}
    warm: dict[Any, Any] = {}
    if once:
        return [fit_and_score(data, probe, setting, seeds[0], None, memo, warm)] * len(seeds)
    return [fit_and_score(data, probe, setting, seed, None, memo, warm) for seed in seeds]


def _feature_jobs(plan: TaskPlan, models: list[Model], notes: list[str]) -> tuple[list[Cell], list[Job]]:
    """Every frozen-feature probe on every model with features, at every setting and seed
    (not ``nb`` on sparse features, the text baseline's TF-IDF: a note says so)."""
    task, n = plan.task, plan.n_train
    cells: list[Cell] = []
    jobs: list[Job] = []
    for model in models:
        if model.features is None:
            continue
        feats = model.features
        data = ProbeData(feats[:n], task.y_train, feats[n:], task.y_test, task.kind, task.metric, task.groups_train)
        for probe in plan.feature_probes:
            if probe == "nb" and sp.issparse(feats):
                notes.append(f"{task.name}: {model.name} features are sparse (TF-IDF); probe nb skipped for them")
                continue
            for s in plan.settings:
                cells.append((model.name, probe, s))
                jobs += [(data, probe, s, seed, None) for seed in range(plan.seeds)]
    return cells, jobs


def _raw_jobs(plan: TaskPlan, models: list[Model], notes: list[str]) -> tuple[list[Cell], list[Job]]:
    """Every fine-tuning probe on every model with a run behind it (the supervised baseline:
    ``finetune``, and ``semi`` when asked for, from random weights), at every setting and
    seed; the samples are adapted once per run."""
    samples: dict[str, ProbeData | None] = {}
    cells: list[Cell] = []
    jobs: list[Job] = []
    features_only = [m.name for m in models if m.context is None]
    if plan.raw_probes and features_only:
        notes.append(
            f"{plan.task.name}: probe(s) {', '.join(plan.raw_probes)} train an encoder: they run on the runs "
            f"(and the supervised baseline), not on the feature rows {', '.join(features_only)}"
        )
    for model in models:
        ctx = model.context
        if ctx is None:
            continue
        # the supervised baseline: training from scratch on the labels alone (finetune), and with
        # the unlabelled samples too (semi: FixMatch from scratch) when semi is asked for
        scratch = ["finetune"] + [p for p in plan.raw_probes if p == "semi"]
        # the baseline by what it is (a run named "supervised-pretrain" lost its probes to it)
        model_probes = scratch if model.baseline and not ctx["trained"] else plan.raw_probes
        if not model_probes:
            continue
        if ctx["run"] not in samples:
            samples[ctx["run"]] = _raw_data(plan, ctx["run"], notes)
        data = samples[ctx["run"]]
        if data is None:
            continue
        for probe in model_probes:
            for s in plan.settings:
                cells.append((model.name, probe, s))
                jobs += [(data, probe, s, seed, ctx) for seed in range(plan.seeds)]
    return cells, jobs


def _raw_data(plan: TaskPlan, run_path: str, notes: list[str]) -> ProbeData | None:
    task, n = plan.task, plan.n_train
    run = open_run(run_path)
    raw = raw_samples(run, task, np.concatenate([task.train, task.test]))
    if raw is None:
        notes.append(
            f"{task.name}: fine-tuning probes skipped: its samples become several per sample for "
            f"{run.path}'s encoder (one channel at a time)"
        )
        return None
    return ProbeData(raw[:n], task.y_train, raw[n:], task.y_test, task.kind, task.metric, task.groups_train)


def _run(
    feature_jobs: list[Job],
    raw_jobs: list[Job],
    keys: list[str],
    cache: ScoreCache,
    n_jobs: int,
    name: str,
    maps: list[np.ndarray],
    alike: frozenset[Setting],
) -> tuple[list[Score], list[np.ndarray]]:
    """The score of every job (feature jobs then raw jobs, as ``keys``): from the cache, or
    fitted and added to it as it finishes; and the 2-D t-SNE of each of ``maps``, made by the same workers
    after the fits (the largest first), where they would otherwise wait. A cell at a setting
    in ``alike`` is fitted once (see ``_cell_job``)."""
    jobs = feature_jobs + raw_jobs
    scores: list[Score | None] = [cache.scores.get(k) for k in keys]
    cells: dict[tuple[int, str, str], list[int]] = {}  # each cell's fits, by job index
    for i in range(len(feature_jobs)):
        data, probe, setting = jobs[i][:3]
        cells.setdefault((id(data), probe, setting.label), []).append(i)
    # a cell with any fit missing is fitted whole: its seeds chain (warm starts), so a seed
    # fitted without the ones before it could land elsewhere within the solver's tolerance
    todo = [c for c in cells.values() if any(scores[i] is None for i in c)]
    todo.sort(key=lambda c: -(jobs[c[0]][2].fraction or 0))  # the largest first
    todo_raw = [i for i in range(len(feature_jobs), len(jobs)) if scores[i] is None]
    with progress() as bar:
        left = sum(map(len, todo)) + len(todo_raw)
        bar_id = bar.add_task(f"bench {name}", total=len(jobs), completed=len(jobs) - left)

        def record(i: int, score: Score) -> None:
            scores[i] = score
            cache.add(keys[i], score)
            bar.advance(bar_id)

        def record_cell(j: int, cell_scores: list[Score]) -> None:
            for i, score in zip(todo[j], cell_scores, strict=True):
                record(i, score)

        coords: list[np.ndarray] = [np.empty((0, 2))] * len(maps)

        def record_any(j: int, out: Any) -> None:
            if j < len(todo):
                record_cell(j, out)
            else:
                coords[j - len(todo)] = out

        cell_jobs = [(_cell_job, *jobs[c[0]][:3], tuple(jobs[i][3] for i in c), jobs[c[0]][2] in alike) for c in todo]
        run_jobs(_call, cell_jobs + [(tsne_2d, x) for x in maps], n_jobs, record_any)
        # fine-tuning trains with every core already; one fit at a time
        run_jobs(_job, [jobs[i] for i in todo_raw], 1, lambda j, score: record(todo_raw[j], score))
    return scores, coords  # type: ignore[return-value]  # every job has a score now


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``: one pool runs jobs of different kinds."""
    return fn(*args)


def _row(plan: TaskPlan, cell: Cell, baseline: bool, scores: list[Score]) -> dict[str, Any]:
    """A cell's result row: the primary metric's mean ± std over seeds, and every metric's."""
    model, probe, s = cell
    task = plan.task
    values = np.array([c.value for c in scores])
    return {
        "task": task.name,
        "model": model,
        "baseline": baseline,
        "probe": probe,
        "setting": s.label,
        "fraction": s.fraction,
        "shots": s.shots,
        "metric": task.metric,
        "higher_is_better": higher_is_better(task.metric),
        "mean": _nan_stat(np.nanmean, values),
        "std": _nan_stat(np.nanstd, values),
        "scores": values.tolist(),
        "metrics": {
            m: {
                "mean": _nan_stat(np.nanmean, [c.metrics[m] for c in scores]),
                "std": _nan_stat(np.nanstd, [c.metrics[m] for c in scores]),
            }
            for m in scores[0].metrics
        },
        "n_labels": scores[0].n_labels,
        "params": [jsonable(c.param) for c in scores],
    }


def _embedding_sample(plan: TaskPlan, models: list[Model]) -> Embeddings:
    """Test-split features for the embedding maps: at most MAP_POINTS samples, the same for
    every model with features."""
    task, n = plan.task, plan.n_train
    pick = np.sort(np.random.default_rng(0).choice(len(task.test), min(MAP_POINTS, len(task.test)), replace=False))
    return {
        (task.name, m.name): (map_features(m.features[n:][pick]), task.y_test[pick])
        for m in models
        if m.features is not None
    }
