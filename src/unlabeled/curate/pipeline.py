"""``curate``: a text collection cleaned as FineWeb2 cleans the web (Penedo et al. 2025) —
language identification, MinHash near-duplicate removal, quality filters with each language's
own thresholds, and rehydration weights — run by datatrove's executors, so the same pipeline
runs on a cluster.

The stages, each a datatrove executor over ``tasks`` shards (``workers`` at once):

1. read the collection, identify each document's language (:class:`~.steps.LanguageID`) and
   write the kept documents as JSONL;
2. MinHash signatures, buckets and clusters (datatrove's four stages, 5-grams, 14 bands of 8
   hashes, as FineWeb), remembering each cluster's size;
3. the duplicate filter (one document of each cluster kept), then the quality filters with the
   thresholds from step 1's documents (:mod:`~.thresholds`).

Everything happens in ``.NAME.curate`` beside the output, so an interrupted run continues from
datatrove's completed tasks when run again with the same request; the output collection is
written (atomically) only at the end, with ``curation.parquet`` (one row per input document:
id, language, score, kept, step, reason, cluster, weight) and ``curation.json`` (the request,
the per-step counts and reasons, examples of what each removed) inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from unlabeled._console import UnlabeledError, console, info, progress, warn
from unlabeled.curate.records import EMPTY, RECORDS_FILE, SUMMARY_FILE, assemble, explain, read_jsonl
from unlabeled.curate.thresholds import language_settings, parse_options
from unlabeled.data.collection import (
    WEIGHT,
    Collection,
    CollectionWriter,
    check_replaceable,
    open_collection,
    refuse_inside_collection,
)
from unlabeled.data.importers import source_fingerprint
from unlabeled.train import checkpoint as ckpt

STEPS = ("lid", "dedup", "quality")
QUALITY = ("gopher_repetition", "fineweb_quality", "gopher_quality")
SAMPLE_PER_LANGUAGE = 5000  # documents of each language its thresholds are computed from


@dataclass
class CurationRequest:
    """What ``curate`` was asked; the work folder is reused only for the same request."""

    source: str
    out: str
    languages: list[str] | None = None
    lid_threshold: float = 0.65  # FineWeb's fastText threshold for English
    steps: list[str] = field(default_factory=lambda: list(STEPS))
    options: dict[str, Any] = field(default_factory=dict)
    tasks: int = 1
    workers: int = 1
    text_column: str | None = None

    def key(self, source_fingerprint: str) -> str:
        """What the work depends on: the request (less ``workers``, which changes only how
        many tasks run at once) and the source's content."""
        made_of = {**asdict(self), "workers": None, "source_fingerprint": source_fingerprint}
        return hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()[:16]


# the 97 classes of langid's bundled model (its ``nb_classes``), written out: decoding the model
# to read them takes 3 s, which every curate command would pay; a test checks they agree
LANGID_CODES = frozenset(
    (  # noqa: SIM905 (a list literal of 97 codes is 97 lines)
        "af am an ar as az be bg bn br bs ca cs cy da de dz el en eo es et eu fa fi fo fr ga gl gu he hi hr ht hu "
        "hy id is it ja jv ka kk km kn ko ku ky la lb lo lt lv mg mk ml mn mr ms mt nb ne nl nn no oc or pa pl ps "
        "pt qu ro ru rw se si sk sl sq sr sv sw ta te th tl tr ug uk ur vi vo wa xh zh zu"
    ).split()
)


def _known_languages(languages: list[str] | None) -> list[str] | None:
    """``--languages`` as langid names them (ISO 639-1, lower case), checked before any work:
    an unknown code ran every stage and then kept nothing."""
    if languages is None:
        return None
    known = LANGID_CODES
    codes = [lang.strip().lower() for lang in languages]
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise UnlabeledError(
            f"--languages: langid knows no {', '.join(unknown)}; it names languages by ISO 639-1 codes "
            f"({', '.join(sorted(known)[:12])}, ...)"
        )
    return codes


def default_tasks() -> int:
    """``--tasks`` when none is given: one shard per CPU core, at most 16. It must not follow
    ``--workers``, which a rerun may change and still continue the same shards."""
    return min(os.cpu_count() or 1, 16)


def _executor(pipeline: list[Any], req: CurationRequest, logs: Path, tasks: int | None = None) -> Any:
    from datatrove.executor import LocalPipelineExecutor

    tasks = tasks or req.tasks
    return LocalPipelineExecutor(
        pipeline, tasks=tasks, workers=min(req.workers, tasks), logging_dir=str(logs), start_method="spawn"
    )


def _run_stage(name: str, executor: Any, total: int, counts: Path) -> None:
    """Run a datatrove executor in a thread, with a progress bar over ``total`` documents from
    the per-rank counts its :class:`~.steps.Count` step writes to ``counts``; a failed task is
    one error naming its log."""
    from rich.progress import TextColumn

    counts.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with progress(TextColumn("{task.fields[rate]} docs/s")) as bar:
        task = bar.add_task(name, total=total, rate="-")
        thread, failure = _started(executor)
        while thread.is_alive():
            thread.join(0.5)
            done = sum(int(p.read_text() or 0) for p in counts.glob("[0-9]*"))
            bar.update(task, completed=done, rate=f"{done / max(time.perf_counter() - start, 1e-9):,.0f}")
    _check_done(name, executor, failure[0] if failure else None)


def _started(executor: Any) -> tuple[threading.Thread, list[BaseException]]:
    """``executor`` running in a thread, its worker processes born ignoring Ctrl-C; the list
    receives the run's exception, for the calling thread to raise."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            with _children_die_with_this_thread():
                executor.run()
        except BaseException as e:  # re-raised in the calling thread
            failure.append(e)

    thread = threading.Thread(target=target, daemon=True)
    with _workers_ignore_ctrl_c(executor.workers, thread):
        thread.start()
    return thread, failure


_FORKING_THREAD: int | None = None  # while a stage runs: the thread its executor forks from
_FORK_PARENT = 0  # and this process's pid
_AT_FORK = threading.Lock()
_PRCTL: Any = None  # libc's prctl, looked up in the parent: a forked child must not dlopen


@contextmanager
def _children_die_with_this_thread() -> Iterator[None]:
    """The processes this thread forks while the block runs (datatrove's ``multiprocess.Manager``
    server) get SIGKILL when it ends, on Linux: a SIGKILL of the command ran no cleanup and left
    the manager running, an orphan holding a few hundred MiB, for good. Its workers are spawned
    (not forked) and set the same signal themselves (:func:`steps.die_with_the_command`).
    Forks by other threads, or after the block (a user's own, through the API), are left alone."""
    global _FORKING_THREAD, _FORK_PARENT, _PRCTL
    import sys

    if sys.platform != "linux":
        yield
        return
    with _AT_FORK:
        if _PRCTL is None:
            import ctypes

            _PRCTL = ctypes.CDLL(None, use_errno=True).prctl
            os.register_at_fork(after_in_child=_die_with_the_forking_thread)
    _FORK_PARENT, _FORKING_THREAD = os.getpid(), threading.get_ident()
    try:
        yield
    finally:
        _FORKING_THREAD = None


def _die_with_the_forking_thread() -> None:
    """In a child just forked: the parent-death signal (PR_SET_PDEATHSIG, which fires when the
    thread that forked ends) where that thread is a stage's, and an exit where the parent is
    already gone."""
    global _FORKING_THREAD
    forked_by, _FORKING_THREAD = _FORKING_THREAD, None  # the child's own forks are its own
    if forked_by is None or forked_by != threading.get_ident():  # the child runs the forking thread
        return
    _PRCTL(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != _FORK_PARENT:
        os._exit(1)


@contextmanager
def _workers_ignore_ctrl_c(workers: int, thread: threading.Thread) -> Iterator[None]:
    """Ctrl-C ignored by this process while the stage's worker processes start, so that they
    are born ignoring it (a process started with SIGINT ignored keeps it so, Python included):
    the terminal's Ctrl-C, sent to every process of the group, then stops this one alone,
    where each worker used to print a traceback, and the workers end with it. A blocked
    signal would not do: the spawned interpreters start with none blocked. Ctrl-C in the
    second or so that the workers take to start is not seen."""
    import multiprocess

    if workers < 2 or threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
        deadline = time.monotonic() + 60
        # the pool's workers and datatrove's manager process, each counted once seen: counted
        # while alive, a worker whose task had already ended would leave the count short, and
        # Ctrl-C ignored (lost) for the whole minute
        seen: set[int] = set()
        while len(seen) < workers + 1 and thread.is_alive() and time.monotonic() < deadline:
            seen.update(p.pid for p in multiprocess.active_children())
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, before)


def _check_done(name: str, executor: Any, failure: BaseException | None = None) -> None:
    """One error naming the stage's logs unless every task of ``executor`` completed."""
    missing = executor.world_size - len(list((Path(executor.logging_dir.path) / "completions").glob("*")))
    if failure or missing:
        logs = Path(executor.logging_dir.path) / "logs"
        why = f": {failure}" if failure else ""
        raise UnlabeledError(f"curate: the {name} stage failed{why}; its task logs are in {logs}")


def _run_short(name: str, executor: Any) -> None:
    """A stage too short for a progress bar (MinHash's buckets and clusters), its workers
    started and its end checked as :func:`_run_stage` does."""
    thread, failure = _started(executor)
    while thread.is_alive():
        thread.join(0.5)
    _check_done(name, executor, failure[0] if failure else None)


def _input(req: CurationRequest, work: Path) -> tuple[Collection, list[list[str]]]:
    """The source as a text collection: itself, or imported into the work folder; and the bad
    files (and rows) the importer left out, each with its reason (kept beside the import, so
    that a continued curation still reports them)."""
    from unlabeled.data.importers import import_source

    source, skipped_file = Path(req.source), work / "skipped.json"
    skipped: list[list[str]] = []
    if (source / "collection.json").exists():
        col = open_collection(source)
    elif (work / "input" / "collection.json").exists():
        col = open_collection(work / "input")
        skipped = json.loads(skipped_file.read_text()) if skipped_file.exists() else []
    else:
        report = import_source(req.source, work / "input", modality="text", text_column=req.text_column)
        col, skipped = report.collection, [[str(p), str(r)] for p, r in report.bad]
        ckpt.atomic_write_text(skipped_file, json.dumps(skipped))
        if skipped:
            warn(f"curate: {len(skipped)} bad file(s) or row(s) of {req.source} left out (curation.json lists them):")
            for path, reason in skipped[:20]:
                warn(f"  {path}: {reason}")
    if not col.is_text:
        raise UnlabeledError(f"curate takes text; {req.source} holds {col.modality} samples")
    return col, skipped


def _lid_stage(req: CurationRequest, col: Collection, work: Path) -> None:
    from datatrove.pipeline.writers import JsonlWriter

    from unlabeled.curate.steps import CollectionReader, Count, LanguageID, NoText

    pipeline: list[Any] = [CollectionReader(str(col.path)), Count(str(work / "counts" / "lid"))]
    pipeline.append(NoText(exclusion_writer=JsonlWriter(str(work / "removed" / EMPTY), compression=None)))
    if "lid" in req.steps:
        removed = JsonlWriter(str(work / "removed" / "lid"), compression=None)
        pipeline.append(LanguageID(req.languages, req.lid_threshold, exclusion_writer=removed))
    pipeline.append(JsonlWriter(str(work / "stage1"), compression=None))
    _run_stage(
        "language id" if "lid" in req.steps else "read",
        _executor(pipeline, req, work / "logs" / "1"),
        len(col),
        work / "counts" / "lid",
    )


def _samples(folder: Path) -> tuple[int, dict[str, list[str]]]:
    """How many documents stage 1 kept, and a uniform sample of at most
    ``SAMPLE_PER_LANGUAGE`` of each language's distinct texts: those with the smallest hashes of
    their text (a bottom-k sample: one pass, bounded memory, and the same documents whatever
    order the tasks wrote them in, so the thresholds do not depend on ``--tasks``). Hashed by
    text, copies of a document are one candidate: the filters the thresholds serve run after
    the duplicates are gone, and six copies of one short document loosened a bound alone."""
    import heapq

    count = 0
    heaps: dict[str, list[tuple[int, str, str]]] = {}
    inside: dict[str, set[int]] = {}  # the keys in each heap
    for row in read_jsonl(folder):
        count += 1
        # without a language (no lid step) a document is the "default" settings' to fit: left
        # out, those settings stayed datatrove's English web defaults, which removed almost
        # every short or non-English document
        language = row.get("metadata", {}).get("language") or "default"
        key = -int.from_bytes(hashlib.blake2b(row["text"].encode("utf-8", "replace"), digest_size=8).digest(), "big")
        heap, keys = heaps.setdefault(language, []), inside.setdefault(language, set())  # max-heap by negation
        if key in keys:
            continue
        if len(heap) < SAMPLE_PER_LANGUAGE:
            heapq.heappush(heap, (key, str(row["id"]), row["text"]))
            keys.add(key)
        elif key > heap[0][0]:
            keys.discard(heapq.heapreplace(heap, (key, str(row["id"]), row["text"]))[0])
            keys.add(key)
    return count, {language: [t for _, _, t in sorted(h)] for language, h in heaps.items()}


def _minhash_config() -> Any:
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.utils.hashing import HashConfig

    return MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, hash_config=HashConfig(precision=64))


def _dedup_stages(req: CurationRequest, work: Path, total: int) -> None:
    """MinHash signatures, buckets and clusters (with each cluster's id and size)."""
    from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashDedupBuckets
    from datatrove.pipeline.readers import JsonlReader

    from unlabeled.curate.steps import Count

    cfg, logs = _minhash_config(), work / "logs"
    reader = JsonlReader(str(work / "stage1"))
    signature = [reader, Count(str(work / "counts" / "minhash")), MinhashDedupSignature(str(work / "sigs"), config=cfg)]
    _run_stage("minhash", _executor(signature, req, logs / "2"), total, work / "counts" / "minhash")
    buckets = [MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=cfg)]
    # in this process (its tasks only merge sorted signature files): worker processes would
    # unpickle datatrove's classes alone, not our steps module that keeps its logs in files
    one = replace(req, workers=1)
    _run_short("minhash buckets", _executor(buckets, one, logs / "3", tasks=cfg.num_buckets))
    cluster = MinhashDedupCluster(
        str(work / "buckets"), str(work / "remove"), config=cfg, save_cluster_id=True, save_cluster_size=True
    )
    _run_short("minhash clusters", _executor([cluster], req, logs / "4", tasks=1))
    # datatrove writes a rank's .remove only where that rank loses a document, and its filter
    # then skips the rank's cluster ids and sizes: a rank whose copies were all kept (the lower
    # rank keeps a cross-rank pair) would lose its clusters. Empty files make it read them (and
    # where no document has a near-duplicate datatrove makes no folder at all)
    (work / "remove").mkdir(parents=True, exist_ok=True)
    for rank in range(req.tasks):
        for ext in ("remove", "clusters", "sizes"):
            (work / "remove" / f"{rank:06d}.{ext}").touch(exist_ok=True)


def _final_stage(req: CurationRequest, work: Path, settings: dict[str, Any], total: int) -> None:
    """The duplicate filter (one document per cluster), then the quality filters."""
    from datatrove.pipeline.dedup import MinhashDedupFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    from unlabeled.curate.steps import Count, QualityFilters

    pipeline: list[Any] = [JsonlReader(str(work / "stage1")), Count(str(work / "counts" / "filters"))]
    if "dedup" in req.steps:
        removed = JsonlWriter(str(work / "removed" / "dedup"), compression=None)
        pipeline.append(
            MinhashDedupFilter(
                str(work / "remove"), exclusion_writer=removed, load_cluster_ids=True, load_cluster_sizes=True
            )
        )
    if "quality" in req.steps:
        removed = JsonlWriter(str(work / "removed" / "quality"), compression=None)
        pipeline.append(QualityFilters(settings, list(QUALITY), exclusion_writer=removed))
    pipeline.append(JsonlWriter(str(work / "kept"), compression=None))
    _run_stage("filters", _executor(pipeline, req, work / "logs" / "5"), total, work / "counts" / "filters")


def _work_path(req: CurationRequest) -> Path:
    out = Path(req.out)
    return out.parent / f".{out.name}.curate"


def _source_fingerprint(req: CurationRequest) -> str:
    """The source's content: a collection's fingerprint, or the files' names, sizes and times."""
    return source_fingerprint(req.source)


def _work_folder(req: CurationRequest) -> Path:
    """``.NAME.curate`` beside the output: reused for the same request on the same source,
    made anew otherwise."""
    work, key = _work_path(req), req.key(_source_fingerprint(req))
    key_file = work / "request.json"
    try:
        same = json.loads(key_file.read_text()).get("key") == key
    except (OSError, ValueError, AttributeError):  # no record, or a damaged one: the work is not ours
        same = False
    if work.exists() and not same:
        info(f"curate: {work} holds another request's work; starting anew")
        shutil.rmtree(work)
    if same:
        info(f"curate: continuing the run in {work} (its completed tasks are kept)")
        return work
    work.mkdir(parents=True, exist_ok=True)
    ckpt.atomic_write_json(key_file, {"key": key, "request": asdict(req)})
    return work


def _write(
    col: Collection, req: CurationRequest, work: Path, overwrite: bool, stats: dict[str, Any], skipped: list[list[str]]
) -> tuple[Collection, dict[str, Any]]:
    """The kept documents (in their input order, with their labels, splits, groups and
    weights) as a collection at ``req.out``, with the records and summary (``stats``: each
    language's statistics and the thresholds relaxed from them; ``skipped``: the bad files the
    import left out, with their reasons) inside it."""
    table, summary, weights = assemble(col, work, req.steps)
    kept = np.flatnonzero(table.column("kept").to_numpy(zero_copy_only=False))
    if not len(kept):
        why = "; ".join(
            f"{step}: {', '.join(f'{r} {n}' for r, n in list(s['reasons'].items())[:3])}"
            for step, s in summary["steps"].items()
            if s["removed"]
        )
        raise UnlabeledError(f"curate: no document of {req.source} passed every step ({why}); see {work}")
    # the source as given: a folder of raw files was imported into the work folder, which goes
    meta = {"name": Path(req.out).name, "curated_from": str(Path(req.source).resolve())}
    writer = CollectionWriter(Path(req.out), "text", (), "uint8", col.classes, meta, overwrite=overwrite)
    try:
        extra = [c for c in col.columns if c != WEIGHT]  # an earlier weight is replaced by this one's
        for start in range(0, len(kept), 10_000):
            part = kept[start : start + 10_000]
            writer.add(
                col.get(part),
                col.ids[part].astype(str).tolist(),
                None if col.labels is None else col.labels[part],
                None if col.splits is None else col.splits[part].tolist(),
                None if col.groups is None else col.groups[part].tolist(),
                {
                    **{c: col.column(c)[part].tolist() for c in extra},  # an author, a question: kept
                    WEIGHT: weights[start : start + len(part)].tolist(),
                },
            )
        pq.write_table(table, writer.side_file(RECORDS_FILE))
        summary = {"request": asdict(req), **summary, "thresholds": stats}
        summary["skipped"] = [{"path": path, "reason": reason} for path, reason in skipped]
        writer.side_file(SUMMARY_FILE).write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    except BaseException:
        writer.abort()
        raise
    return writer.close(), summary


def _note_unused(req: CurationRequest) -> None:
    """Options that only a step left out of ``--steps`` reads, named rather than dropped:
    ``--languages en --steps dedup`` kept every language without a word."""
    given = {
        ("--languages", "lid"): bool(req.languages),
        ("--lid-threshold", "lid"): req.lid_threshold != CurationRequest.lid_threshold,
        ("--option", "quality"): bool(req.options),
    }
    unused = [f"{flag} (read by the {step} step)" for (flag, step), on in given.items() if on and step not in req.steps]
    if unused:
        info(f"note: {', '.join(unused)} ignored: --steps leaves that step out")


def run_curation(req: CurationRequest, overwrite: bool = False) -> Collection:
    """Runs a request: the stages (continuing any completed ones), then the collection."""
    t0 = time.perf_counter()
    unknown = set(req.steps) - set(STEPS)
    if unknown or not req.steps:
        raise UnlabeledError(f"curate --steps takes some of {', '.join(STEPS)}, got {', '.join(req.steps) or 'none'}")
    req = replace(req, steps=[s for s in STEPS if s in req.steps])  # always run in FineWeb2's order
    if not 0 <= req.lid_threshold <= 1:
        raise UnlabeledError(f"--lid-threshold must be in [0, 1], got {req.lid_threshold}")
    if req.workers < 1 or req.tasks < 1:
        raise UnlabeledError("--workers and --tasks must be at least 1")
    req = replace(req, languages=_known_languages(req.languages) if "lid" in req.steps else req.languages)
    cores = os.cpu_count() or 1
    if req.workers > cores:  # each worker is a process busy on a core: more only wait, holding memory
        info(f"note: --workers {req.workers} capped at this machine's {cores} CPU cores")
        req = replace(req, workers=cores)
    out, source = Path(req.out).resolve(), Path(req.source).resolve()
    if out == source or out in source.parents:  # --overwrite would delete what it reads
        raise UnlabeledError(f"--out {req.out} holds the source {req.source}; write the curated collection elsewhere")
    if source in out.parents:  # refused after the whole curation, leaving its work folder in the source
        raise UnlabeledError(
            f"--out {req.out} is inside the source {req.source}; write the curated collection elsewhere"
        )
    refuse_inside_collection(out)
    if Path(req.out).exists() and not overwrite:
        raise UnlabeledError(f"{req.out} already exists; pass --overwrite to replace it")
    check_replaceable(Path(req.out))  # before the work, not after it
    options = parse_options(req.options)
    _note_unused(req)
    from unlabeled.train.run import run_lock  # the training loop's modules, only when a curation runs

    with run_lock(req.out):  # a second curation into the same --out is refused, not interleaved
        return _curate_held(req, options, overwrite, t0)


def _curate_held(req: CurationRequest, options: dict[str, dict[str, Any]], overwrite: bool, t0: float) -> Collection:
    """:func:`run_curation`'s stages and collection, with ``req.out`` held: two commands
    curating into one folder shared its work folder, each continuing the other's tasks."""
    fresh = not _work_path(req).exists()
    work = _work_folder(req)
    try:
        col, skipped = _input(req, work)
    except UnlabeledError:
        if fresh:  # nothing done yet: leave nothing behind
            shutil.rmtree(work, ignore_errors=True)
        raise
    _lid_stage(req, col, work)
    total, samples = _samples(work / "stage1")
    if not total:
        raise UnlabeledError(
            f"curate: no document of {req.source} passed language identification "
            f"(languages {', '.join(req.languages or ['any'])}, threshold {req.lid_threshold}); "
            f"langid names languages by ISO 639-1 codes (en, de)"
        )
    settings, stats = language_settings(samples, options) if "quality" in req.steps else ({}, {})
    if "dedup" in req.steps:
        _dedup_stages(req, work, total)
    _final_stage(req, work, settings, total)
    out, summary = _write(col, req, work, overwrite, stats, skipped)
    shutil.rmtree(work, ignore_errors=True)
    seconds = time.perf_counter() - t0
    console.print(explain({**summary, "examples": {}}))
    bad = f" ({len(skipped)} bad file(s) or row(s) left out)" if skipped else ""
    info(f"curate: kept {summary['kept']:,} of {summary['input']:,} documents{bad} in {seconds:.0f} s -> {out.path}")
    if stats:
        info(
            "thresholds from each language's documents: "
            + ", ".join(
                f"{k} {v['documents']:,} docs" + ("" if "fitted_to" not in v else f" ({v['fitted_to']})")
                for k, v in stats.items()
            )
        )
    return out


def read_summary(path: str | Path) -> dict[str, Any]:
    """The ``curation.json`` of a curated collection."""
    f = Path(path) / SUMMARY_FILE
    if not f.exists():
        raise UnlabeledError(f"{path} is not a curated collection (no {SUMMARY_FILE})")
    return json.loads(f.read_text())
