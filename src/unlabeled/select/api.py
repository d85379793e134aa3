"""``select``: checks a selection request once, prepares what its method needs (the pool's
candidates, their embeddings, the target's, the budget as a count), runs the method the
registry names, and writes the chosen samples as a derived collection with ``selection.json``
saying how they were chosen."""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled._settings import check_count, check_kind, folder
from unlabeled.data.collection import (
    Collection,
    check_replaceable,
    check_split_name,
    derive_collection,
    open_collection,
    refuse_inside_collection,
)
from unlabeled.runs import Run, check_same_samples, open_run
from unlabeled.runtime import check_seed
from unlabeled.select import algorithms
from unlabeled.select.index import pool_embeddings
from unlabeled.select.methods import METHODS as REGISTRY
from unlabeled.select.methods import MethodInput, SelectionMethod
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.run import run_lock

METHODS = tuple(REGISTRY)  # the method names, in the registry's order
SELECTION_FILE = "selection.json"


@dataclass(frozen=True, eq=False)  # eq=False: it may hold arrays
class SelectionRequest:
    """The arguments of one ``select`` call, as given."""

    pool: Collection | str | os.PathLike[str]
    method: str
    out: str | os.PathLike[str]
    budget: float | None
    encoder: Run | str | os.PathLike[str] | None
    target: Collection | str | os.PathLike[str] | None
    threshold: float
    centroids: int | None
    stop_similarity: float | None
    exclude_split: str | None
    seed: int
    device: str
    overwrite: bool
    pool_vectors: np.ndarray | None
    target_vectors: np.ndarray | None


DEFAULT_THRESHOLD = 0.95  # dedup's cosine similarity above which samples are near duplicates


def select(
    pool: Collection | str | os.PathLike[str],
    *,
    method: str,
    out: str | os.PathLike[str],
    budget: float | None = None,
    encoder: Run | str | os.PathLike[str] | None = None,
    target: Collection | str | os.PathLike[str] | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    centroids: int | None = None,
    stop_similarity: float | None = None,
    exclude_split: str | None = "test",
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    pool_vectors: np.ndarray | None = None,
    target_vectors: np.ndarray | None = None,
) -> Collection:
    """Select samples of ``pool`` (its ``exclude_split`` never: test samples stay out of
    pretraining data) and write them as a derived collection at ``out``.

    ``budget``: how many (a fraction if below 1). ``threshold``: dedup's cosine similarity
    above which two samples are duplicates. ``centroids``: k of the k-means (default: SimCore's
    sqrt of the target size, capped at 100; dedup's sqrt of the pool size).
    ``pool_vectors``/``target_vectors``: precomputed embeddings instead of ``encoder``'s."""
    request = SelectionRequest(
        pool=pool,
        method=method,
        out=folder(out),
        budget=budget.item() if isinstance(budget, np.generic) else budget,  # recorded in JSON
        encoder=encoder,
        target=target,
        threshold=threshold,
        centroids=centroids,
        stop_similarity=stop_similarity,
        exclude_split=exclude_split,
        seed=seed,
        device=device,
        overwrite=overwrite,
        pool_vectors=pool_vectors,
        target_vectors=target_vectors,
    )
    return run_selection(request)


def run_selection(req: SelectionRequest) -> Collection:
    """Runs a request: the checks, the embeddings, the method, then the derived collection;
    one process at a time writes ``req.out`` (a second gets an error naming the first)."""
    with run_lock(req.out):
        return _run_selection(req)


def _run_selection(req: SelectionRequest) -> Collection:
    t0 = time.perf_counter()
    method = _method(req.method)
    col = open_collection(req.pool)
    candidates = col.indices(exclude=req.exclude_split)
    _check(req, method, col, candidates)
    record: dict[str, Any] = {
        "method": req.method,
        "pool": str(col.path.resolve()),
        "pool_size": len(candidates),
        "seed": req.seed,
        "exclude_split": req.exclude_split,
    }
    vectors = target = run = None
    if method.needs_embeddings:
        vectors, run = _pool_vectors(req, col, candidates)
        if run is not None:
            record["encoder"] = str(run.path.resolve())
    if method.needs_target:
        target, target_col = _target_vectors(req, run, vectors)
        if target_col is not None:
            record["target"] = str(target_col.path.resolve())
        record["target_size"] = len(target)
    data = MethodInput(
        size=len(candidates),
        vectors=vectors,
        target=target,
        budget=_budget(req.budget, len(candidates), req.method) if method.needs_budget else None,
        seed=req.seed,
        threshold=req.threshold,
        centroids=req.centroids,
        stop_similarity=req.stop_similarity,
    )
    chosen, extra = method.select(data)
    if not len(chosen):  # was "a derived collection needs at least one sample", which named no cause
        why = (
            f": no pool sample is within --stop-similarity {req.stop_similarity:g} of the target"
            if (req.stop_similarity is not None)
            else ""
        )
        raise UnlabeledError(f"{req.method} kept no sample{why}")
    if req.budget is not None:
        record["budget"] = req.budget
    positions = candidates[chosen]
    record.update(extra)
    record.update({"selected": len(positions), "seconds": round(time.perf_counter() - t0, 2)})
    out = Path(req.out)
    meta = {"name": out.name, "selection": record}
    derived = derive_collection(col, positions, req.out, meta, overwrite=req.overwrite)
    ckpt.atomic_write_json(out / SELECTION_FILE, record)
    info(f"{req.method}: kept {len(positions)} of {len(candidates)} pool samples -> {req.out}")
    return derived


def _method(name: str) -> SelectionMethod:
    if name not in REGISTRY:
        raise UnlabeledError(f"unknown selection method {name!r}; choose from {', '.join(METHODS)}")
    return REGISTRY[name]()


def _check(req: SelectionRequest, method: SelectionMethod, col: Collection, candidates: np.ndarray) -> None:
    """What can be refused before any embedding is computed."""
    if not len(candidates):
        raise UnlabeledError(f"{col.path} has no samples outside split {req.exclude_split!r}")
    if Path(req.out).resolve() == col.path.resolve():
        raise UnlabeledError(f"--out {req.out} is the pool to select from; write the selection elsewhere")
    refuse_inside_collection(Path(req.out))  # before the embeddings, not after them
    if Path(req.out).exists() and not req.overwrite:
        raise UnlabeledError(f"{req.out} already exists; pass --overwrite to replace it")
    check_replaceable(Path(req.out))  # before any embedding, not after it
    if method.needs_target and req.target is None and req.target_vectors is None:
        raise UnlabeledError(f"{req.method} needs --target, a collection of the data you care about")
    check_seed(req.seed, "--seed")
    # kinds before comparisons: "0.9" and NaN raised Python's own errors
    check_kind("--threshold", req.threshold, DEFAULT_THRESHOLD)
    if not 0 < req.threshold <= 1:
        raise UnlabeledError(f"--threshold must be in (0, 1], got {req.threshold}")
    if req.stop_similarity is not None:
        check_kind("--stop-similarity", req.stop_similarity, 0.0)
    if req.centroids is not None:
        check_count(req.centroids, "--centroids", 1)
    if req.centroids is not None and not method.clusters_target and req.centroids > len(candidates):
        raise UnlabeledError(f"--centroids {req.centroids} is more than the pool's {len(candidates)} samples")
    check_split_name(col, req.exclude_split)
    if req.stop_similarity is not None and not -1 <= req.stop_similarity <= 1:
        raise UnlabeledError(f"--stop-similarity is a cosine similarity in [-1, 1]; got {req.stop_similarity}")
    unused = [
        flag
        for flag, given in (
            ("--budget", req.budget is not None and not method.needs_budget),
            ("--encoder", req.encoder is not None and not method.needs_embeddings),
            ("--target", req.target is not None and not method.needs_target),
            ("--centroids", req.centroids is not None and "centroids" not in method.takes),
            ("--stop-similarity", req.stop_similarity is not None and "stop_similarity" not in method.takes),
            ("--threshold", req.threshold != DEFAULT_THRESHOLD and "threshold" not in method.takes),
        )
        if given
    ]
    if unused:
        raise UnlabeledError(f"{req.method} takes no {' or '.join(unused)}")


def _budget(budget: float | None, n: int, method: str) -> int:
    if budget is None:
        raise UnlabeledError(f"--budget is required for {method} (a count, or a fraction of the pool below 1)")
    if isinstance(budget, np.integer | np.floating):  # len(x) // 10 in numpy, say
        budget = budget.item()
    if isinstance(budget, bool) or not isinstance(budget, int | float) or not math.isfinite(budget):
        raise UnlabeledError(f"--budget must be a count, or a fraction of the pool below 1; got {budget!r}")
    if budget >= 1 and budget != int(budget):
        raise UnlabeledError(f"--budget {budget:g}: a count is a whole number (a fraction of the pool is below 1)")
    # halves up (round() took them to even: 0.5 of 9 and of 7 both gave 4)
    count = math.floor(budget * n + 0.5) if 0 < budget < 1 else int(budget)
    if budget <= 0:
        raise UnlabeledError(f"budget must be positive, got {budget}")
    if count < 1:
        raise UnlabeledError(f"budget {budget:g} of {n} samples rounds to none; ask for at least one sample")
    if count > n:
        raise UnlabeledError(f"budget {count} is larger than the {n} samples it can choose from")
    if isinstance(budget, float) and budget == 1 and n > 1:  # "1.0" reads as all of them, but is a count
        info(f"note: --budget {budget:g} keeps one sample of {n} (a fraction of the pool is below 1: 0.5 keeps half)")
    return count


def _pool_vectors(req: SelectionRequest, col: Collection, candidates: np.ndarray) -> tuple[np.ndarray, Run | None]:
    """The candidates' embeddings, given or by the encoder (cached in its run), and the
    encoder's run when it computed them."""
    run = None
    pool_vectors = req.pool_vectors
    if pool_vectors is None:
        if req.encoder is None:
            raise UnlabeledError(f"{req.method} works on embeddings: pass --encoder RUN (a pretrained run)")
        run = open_run(req.encoder)
        check_same_samples(run.config["modality"], col, f"encoder {run.path} was trained on")
        pool_vectors = pool_embeddings(run, col, req.device)
    else:
        _check_given_vectors("pool_vectors", pool_vectors, len(col), col)
    vectors = _rows(pool_vectors, candidates) if len(candidates) < len(col) else pool_vectors
    if len(vectors) != len(candidates):
        raise UnlabeledError(f"{len(vectors)} pool embeddings for {len(candidates)} pool samples")
    return vectors, run


def _rows(vectors: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``vectors[positions]``: in memory where it fits (``algorithms.IN_MEMORY_BYTES``), else
    gathered a chunk at a time into a temporary memory map beside the cached embeddings (fancy
    indexing copied every candidate into memory, so the methods' streaming paths never ran
    and a pool too large for memory failed here whenever a split was left out)."""
    size = len(positions) * vectors.shape[1] * vectors.dtype.itemsize
    if size <= algorithms.IN_MEMORY_BYTES or not isinstance(vectors, np.memmap):
        return np.asarray(vectors[positions])
    where = Path(vectors.filename).parent if vectors.filename else None
    with tempfile.TemporaryFile(dir=where) as f:  # the mapping outlives the file's descriptor
        out = np.memmap(f, dtype=vectors.dtype, mode="w+", shape=(len(positions), vectors.shape[1]))
    for s in range(0, len(positions), algorithms.CHUNK):
        out[s : s + algorithms.CHUNK] = vectors[positions[s : s + algorithms.CHUNK]]
    return out


def _check_given_vectors(name: str, vectors: np.ndarray, rows: int, col: Collection | None) -> None:
    """Embeddings given through the API: one finite row of numbers per sample (of ``col``,
    all of it: rows are read by the collection's positions)."""
    shape = getattr(vectors, "shape", ())
    if len(shape) != 2 or shape[0] != rows:
        whose = f" (one per sample of {col.path}, in its order)" if col is not None else ""
        raise UnlabeledError(f"{name} must be a 2-D array of {rows} rows{whose}; got shape {tuple(shape)}")
    for start in range(0, rows, 1 << 16):  # a block at a time: a million vectors may be memory-mapped
        if not np.isfinite(vectors[start : start + (1 << 16)]).all():
            raise UnlabeledError(f"{name} holds NaN or infinite values")


def _target_vectors(
    req: SelectionRequest, run: Run | None, vectors: np.ndarray
) -> tuple[np.ndarray, Collection | None]:
    """The target's embeddings, given or by the encoder, and the target collection when they
    were computed from it."""
    tcol = None
    if req.target_vectors is None:
        tcol = open_collection(req.target)
        tpos = tcol.indices(exclude=req.exclude_split)
        if not len(tpos):
            raise UnlabeledError(f"target {tcol.path} is empty (outside split {req.exclude_split!r})")
        if run is None:  # the pool's embeddings were given: the target's are the encoder's
            if req.encoder is None:
                raise UnlabeledError("a --target collection is embedded by --encoder RUN: pass one (or target_vectors)")
            run = open_run(req.encoder)
        check_same_samples(run.config["modality"], tcol, f"encoder {run.path} was trained on")
        tvec = run.encode(tcol, tpos, device=req.device)
    else:
        tvec = np.asarray(req.target_vectors, dtype=np.float32)
        _check_given_vectors("target_vectors", tvec, len(tvec), None)
    if len(tvec) == 0:
        raise UnlabeledError("the target is empty")
    if tvec.shape[1] != vectors.shape[1]:
        raise UnlabeledError(f"target embeddings have dimension {tvec.shape[1]}, the pool's have {vectors.shape[1]}")
    return tvec, tcol
