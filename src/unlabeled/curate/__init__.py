"""Curating text corpora (FineWeb2's pipeline on datatrove): ``curate`` and ``explain``.

import unlabeled as ul
clean = ul.curate("crawl/", "data/clean", languages=["en", "de"])
print(ul.curate_explain("data/clean"))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from unlabeled._console import UnlabeledError
from unlabeled._settings import check_count, check_kind, folder
from unlabeled.curate.pipeline import STEPS, CurationRequest, default_tasks, read_summary, run_curation
from unlabeled.curate.records import explain
from unlabeled.data.collection import Collection


def curate(
    source: str | os.PathLike[str] | Collection,
    out: str | os.PathLike[str],
    *,
    languages: Sequence[str] | None = None,
    lid_threshold: float = 0.65,
    steps: Sequence[str] = STEPS,
    options: dict[str, Any] | None = None,
    workers: int = 1,
    tasks: int | None = None,
    text_column: str | None = None,
    overwrite: bool = False,
) -> Collection:
    """Clean a text corpus (a text collection, or anything ``import`` reads as text) into a
    collection at ``out``: language identification (``languages`` kept, ``lid_threshold`` the
    least confidence), MinHash near-duplicate removal and quality filters with each language's
    own thresholds (FineWeb2, Penedo et al. 2025), each of ``steps`` optional; ``options``
    sets a filter's threshold for every language (``{"gopher_quality.min_doc_words": 5}``).
    ``languages`` and ``steps`` may also be comma-separated strings. ``workers`` tasks run at
    once (at most one per CPU core), of ``tasks`` (default: the CPU's cores, at most 16, so that
    a rerun with other ``workers`` continues the same work). The collection holds ``curation.parquet`` (a
    row per input document: language, score, kept, step, reason, cluster, weight) and
    ``curation.json`` (what :func:`curate_explain` prints). Run again after an interruption,
    it continues from the completed tasks."""
    # a string is one name (or a comma-separated list, as the command line takes), not letters
    languages = languages.split(",") if isinstance(languages, str) else languages
    steps = steps.split(",") if isinstance(steps, str) else steps
    # their kinds before float() and int() raise Python's own errors (None, a word)
    check_kind("lid_threshold", lid_threshold, 0.65)
    check_count(workers, "workers", 1)
    if tasks is not None:
        check_count(tasks, "tasks", 1)
    if not isinstance(steps, list | tuple) or not all(isinstance(s, str) for s in steps):
        raise UnlabeledError(f"steps takes some of lid, dedup, quality, got {steps!r}")
    req = CurationRequest(
        source=str(source.path if isinstance(source, Collection) else source),
        out=str(folder(out)),
        languages=[s.strip() for s in languages if s.strip()] if languages else None,
        lid_threshold=float(lid_threshold),
        steps=[s.strip() for s in steps],
        options=dict(options or {}),
        tasks=default_tasks() if tasks is None else int(tasks),
        workers=int(workers),
        text_column=text_column,
    )
    return run_curation(req, overwrite=overwrite)


def curate_explain(path: str | os.PathLike[str] | Collection) -> str:
    """Per step of the curation that made the collection at ``path``: documents in, removed,
    why, and examples of each reason."""
    return explain(read_summary(path.path if isinstance(path, Collection) else path))


__all__ = ["curate", "curate_explain"]
