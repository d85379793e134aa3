"""Choose what to pretrain on: ``select`` turns a pool collection into a smaller collection
that reads the pool's arrays in place, with ``selection.json`` saying how it was made.

    sel = select("data/pool", method="simcore", encoder="runs/a", target="data/target",
                 budget=20000, out="data/pool_simcore")

Methods (see ``methods.py`` for the papers): ``random``, ``kcenter``, ``simcore`` (needs a
target), ``dedup`` (SemDeDup, needs a threshold, no budget), ``target-shift`` (GOT-D, needs a
target). Every method but ``random`` works on the embeddings of an encoder run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError, info
from unlabeled.data.collection import Collection, derive_collection, open_collection
from unlabeled.runs import Run, open_run
from unlabeled.select import methods
from unlabeled.select.index import EmbeddingIndex, pool_embeddings
from unlabeled.train import checkpoint as ckpt

METHODS = ("random", "kcenter", "simcore", "dedup", "target-shift")
NEEDS_TARGET = {"simcore", "target-shift"}
SELECTION_FILE = "selection.json"


def _budget(budget: float | None, n: int, method: str) -> int:
    if budget is None:
        raise UnlabeledError(f"--budget is required for {method} (a count, or a fraction of the pool below 1)")
    count = round(budget * n) if 0 < budget < 1 else int(budget)
    if count < 1:
        raise UnlabeledError(f"budget must be positive, got {budget}")
    if count > n:
        raise UnlabeledError(f"budget {count} is larger than the pool ({n} samples)")
    return count


def select(
    pool: Collection | str | os.PathLike[str],
    *,
    method: str,
    out: str | os.PathLike[str],
    budget: float | None = None,
    encoder: Run | str | os.PathLike[str] | None = None,
    target: Collection | str | os.PathLike[str] | None = None,
    threshold: float = 0.95,
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
    t0 = time.perf_counter()
    if method not in METHODS:
        raise UnlabeledError(f"unknown selection method {method!r}; choose from {', '.join(METHODS)}")
    col = open_collection(pool)
    candidates = col.indices(exclude=exclude_split)
    if not len(candidates):
        raise UnlabeledError(f"{col.path} has no samples outside split {exclude_split!r}")
    if Path(out).exists() and not overwrite:
        raise UnlabeledError(f"{out} already exists; pass --overwrite to replace it")
    if method in NEEDS_TARGET and target is None and target_vectors is None:
        raise UnlabeledError(f"{method} needs --target, a collection of the data you care about")
    if not 0 < threshold <= 1:
        raise UnlabeledError(f"threshold must be in (0, 1], got {threshold}")
    record: dict[str, Any] = {
        "method": method,
        "pool": str(col.path.resolve()),
        "pool_size": len(candidates),
        "seed": seed,
        "exclude_split": exclude_split,
    }

    run = None
    if method != "random":
        if pool_vectors is None:
            if encoder is None:
                raise UnlabeledError(f"{method} works on embeddings: pass --encoder RUN (a pretrained run)")
            run = open_run(encoder)
            if tuple(run.config["modality"]["sample_shape"]) != col.sample_shape:
                raise UnlabeledError(f"encoder {run.path} was trained on samples of another shape than {col.path}'s")
            pool_vectors = pool_embeddings(run, col, device)
            record["encoder"] = str(run.path.resolve())
        vectors = np.asarray(pool_vectors[candidates]) if len(candidates) < len(col) else pool_vectors
        if len(vectors) != len(candidates):
            raise UnlabeledError(f"{len(vectors)} pool embeddings for {len(candidates)} pool samples")

    tvec = None
    if method in NEEDS_TARGET:
        if target_vectors is None:
            tcol = open_collection(target)
            tpos = tcol.indices(exclude=exclude_split)
            if not len(tpos):
                raise UnlabeledError(f"target {tcol.path} is empty (outside split {exclude_split!r})")
            assert run is not None, "target embeddings need the encoder"
            tvec = run.encode(tcol, tpos, device=device)
            record["target"] = str(tcol.path.resolve())
        else:
            tvec = np.asarray(target_vectors, dtype=np.float32)
        if len(tvec) == 0:
            raise UnlabeledError("the target is empty")
        if tvec.shape[1] != vectors.shape[1]:
            raise UnlabeledError(
                f"target embeddings have dimension {tvec.shape[1]}, the pool's have {vectors.shape[1]}"
            )
        record["target_size"] = len(tvec)

    if method == "random":
        n = _budget(budget, len(candidates), method)
        chosen, extra = methods.random_selection(len(candidates), n, seed), {}
    elif method == "kcenter":
        n = _budget(budget, len(candidates), method)
        chosen, extra = methods.kcenter(vectors, n, seed), {}
    elif method == "simcore":
        n = _budget(budget, len(candidates), method)
        k = centroids or min(100, max(1, round(np.sqrt(len(tvec)))))
        index = EmbeddingIndex(vectors, seed=seed, queries=k)
        chosen, extra = methods.simcore(index, tvec, n, k, seed, stop_similarity)
        extra["index"] = index.kind
    elif method == "dedup":
        chosen, extra = methods.semdedup(vectors, threshold, centroids, seed)
        extra["threshold"] = threshold
    else:
        n = _budget(budget, len(candidates), method)
        chosen, extra = methods.target_shift(vectors, tvec, n, seed)
    if budget is not None:
        record["budget"] = budget
    positions = candidates[chosen]
    record.update(extra)
    record.update({"selected": len(positions), "seconds": round(time.perf_counter() - t0, 2)})
    derived = derive_collection(col, positions, out, {"name": Path(out).name, "selection": record}, overwrite=overwrite)
    ckpt.atomic_write_json(Path(out) / SELECTION_FILE, record)
    info(f"{method}: kept {len(positions)} of {len(candidates)} pool samples -> {out}")
    return derived


__all__ = ["METHODS", "EmbeddingIndex", "select"]
