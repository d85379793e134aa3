"""Provenance for exact forgetting: the runs a model descends from, and which of them trained
on the samples to forget.

A classifier fine-tuned from a pretrained encoder has seen its own labelled samples and,
through that encoder, everything the encoder was pretrained on; an encoder pretrained with
``--init`` has seen its starting run's data too. Retraining the classifier alone from the same
encoder (what ``retrain`` and ``sisa`` do) is exact only when no ancestor trained on the
forgotten samples: the "unlearning lineage" problem (Bourtoule et al. 2021, "Machine
Unlearning", section IV, makes the same point for pretrained feature extractors). So before an
exact method runs, every ancestor is checked:

- by content: each ancestor is found by the path its child recorded and must still hold the
  weights its child started from (the hash the child recorded), else the lineage is broken
  and exactness cannot be established;
- by sample: an ancestor trained on the same collection is compared by position; one trained on
  another collection by the content of the samples (a hash of each sample's bytes), so a
  sample imported twice under two ids is still found.

An ancestor that saw a forgotten sample is retrained without it (``ancestors="retrain"``),
from the nearest clean ancestor above it or from scratch, and everything below it again from
the retrained one; otherwise the request is refused, naming the ancestor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.forget.request import source_task
from unlabeled.runs import Run
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.spec import file_hash


@dataclass(frozen=True, eq=False)
class Ancestor:
    """A run another one started from. ``relation`` says how (``source``: the pretrained
    encoder a classifier was fine-tuned from; ``init``: the weights pretraining continued
    from); ``collection`` is what it trained on and ``forgotten`` the positions there of the
    samples to forget that it trained on (empty: a clean ancestor)."""

    run: Run
    relation: str
    collection: Collection
    forgotten: np.ndarray

    @property
    def saw(self) -> int:
        return len(self.forgotten)

    def describe(self) -> str:
        how = {"source": "the pretrained encoder", "unlearned": "the run an approximate forget request changed"}
        return f"{self.run.path} ({how.get(self.relation, 'the --init weights')})"


def parent(run: Run, weights: bool = False) -> tuple[Run, str] | None:
    """The run ``run`` started from and how, checked to still hold the weights ``run``
    started from; None for a run trained from scratch. With ``weights`` (``run`` is the start
    of a run below it), the output of an approximate forget request has the run it was
    unlearned from as its parent ("unlearned"): its weights are that run's, changed, and its
    config, a copy of that run's, named that run's own start, so the run that trained on the
    samples was never checked. Retrained itself, such an output repeats that copied recipe."""
    source = (run.config.get("forget") or {}).get("source")
    if weights and isinstance(run.config.get("method", {}).get("unlearning"), str) and source:
        try:
            return Run(source), "unlearned"
        except UnlabeledError:
            raise UnlabeledError(
                f"{run.path} was unlearned from {source}, which is no longer a run: whether it trained on the "
                "samples to forget cannot be checked"
            ) from None
    init = run.config.get("init") or {}
    path, relation = (run.config.get("source_run"), "source") if run.kind == "classifier" else (init.get("run"), "init")
    if not path:
        return None
    try:
        up = Run(path)
    except UnlabeledError:
        raise UnlabeledError(
            f"{run.path} started from {path}, which is no longer a run: whether it trained on the samples to forget "
            "cannot be checked"
        ) from None
    recorded = init.get("weights") if init.get("run") == path else None
    model = up.path / ckpt.MODEL_FILE
    if recorded and model.exists() and file_hash(model) != recorded:
        raise UnlabeledError(
            f"{up.path} changed since {run.path} started from it (its weights' hash is not the one recorded): "
            "the lineage is broken and retraining would not be exact"
        )
    return up, relation


def lineage(run: Run) -> list[tuple[Run, str]]:
    """``run``'s ancestors, nearest first, each with how its child started from it."""
    out: list[tuple[Run, str]] = []
    seen = {run.path.resolve()}
    here = run
    while (up := parent(here, weights=here is not run)) is not None:
        if up[0].path.resolve() in seen:
            raise UnlabeledError(f"{up[0].path} is its own ancestor (a cycle in the runs' source paths)")
        seen.add(up[0].path.resolve())
        out.append(up)
        here = up[0]
    return out


def trained_collection(run: Run) -> Collection:
    """The collection ``run`` trained on, checked unchanged since (:func:`source_task`)."""
    return source_task(run)


def forgotten_in(run: Run, task: Collection, forget_pos: np.ndarray) -> tuple[Collection, np.ndarray]:
    """Where, in the collection ``run`` trained on, the samples of ``task`` at ``forget_pos``
    are that ``run`` trained on: matched by position on the same collection (or a copy with the
    same fingerprint), else by content."""
    col = trained_collection(run)
    trained = np.sort(col.positions(run.training_ids()))
    # the same samples in the same order, whatever their ids: by position, where the import
    # found no two samples alike (a copy under another id is a duplicate the refusal counts)
    if col.fingerprint() == task.fingerprint() and col.meta.get("exact_duplicates", 1) == 0:
        return col, np.intersect1d(trained, forget_pos)
    wanted = set(task.content_digests(forget_pos))
    hit = np.fromiter((d in wanted for d in col.content_digests(trained)), bool, len(trained))
    return col, trained[hit]


def ancestors(run: Run, task: Collection, forget_pos: np.ndarray) -> list[Ancestor]:
    """Every ancestor of ``run``, nearest first, with the forgotten samples it trained on."""
    return [Ancestor(up, how, *forgotten_in(up, task, forget_pos)) for up, how in lineage(run)]


def to_retrain(chain: list[Ancestor]) -> list[Ancestor]:
    """The ancestors that must be trained again, farthest first: the farthest one that saw a
    forgotten sample and every one below it (they descend from it)."""
    dirty = [i for i, a in enumerate(chain) if a.saw]
    return [] if not dirty else chain[: dirty[-1] + 1][::-1]


def refusal(method: str, run: Run, dirty: Ancestor) -> UnlabeledError:
    """Why ``method`` would not be exact on ``run``, naming the ancestor that saw the samples."""
    return UnlabeledError(
        f"{method} would not be exact: {dirty.describe()} of {run.path} trained on {dirty.saw} sample(s) with "
        "the content of those to forget (a duplicate counts); pass --ancestors retrain to retrain it without "
        "them (and what descends from it), or forget with an approximate method"
    )
