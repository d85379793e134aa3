"""A bench task: a labelled collection, what to predict, how to score it, how to split it.

    task = make_task(open_collection("data/spiro"), target="fev1", group="patient")
    task.kind, task.metric, task.split      # 'regression', 'mae', 'group-aware 80/20 split ...'

What to predict is the ``label`` column (classification) or any other column of the
collection's index (``--target-column``): a numeric column is a regression target, a text
column a set of classes. The split is the collection's own train/test split when it has one,
else a seeded 80/20 split that is stratified by class, and group-aware when the task names a
group column (no patient, speaker or subject on both sides).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.bench.metrics import CLASSIFICATION, DEFAULT_METRIC, REGRESSION, check_metric, metrics_for
from unlabeled.data.collection import NO_LABEL, Collection
from unlabeled.data.splits import TEST_FRACTION, holdout_split

SPLITS = ("auto", "given", "stratified", "group")


@dataclass
class Task:
    """Positions of the train and test samples (among the labelled ones), their targets and,
    for group-aware protocols, their groups."""

    name: str
    collection: Collection
    kind: str
    metric: str
    target: str
    train: np.ndarray
    test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    groups_train: np.ndarray | None
    split: str
    classes: list[str] | None = None

    def digest(self) -> str:
        """A hash of everything a score on this task depends on, as it is now: which samples
        are in the train and test splits (the collection's content at those positions), their
        targets and groups, the task's kind, metric and target column. Relabelling the
        collection or changing its split gives another digest; renaming the task does not."""
        samples = self.collection.digest(np.concatenate([self.train, self.test]))
        arrays = (self.train, self.test, self.y_train, self.y_test, self.groups_train)
        parts = [self.kind, self.metric, self.target, samples, *[_array_digest(a) for a in arrays]]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()

    def describe(self) -> dict[str, object]:
        return {
            "train": int(len(self.train)),
            "test": int(len(self.test)),
            "split": self.split,
            "kind": self.kind,
            "metric": self.metric,
            "target": self.target,
            "collection": str(self.collection.path),
        }


def _array_digest(a: np.ndarray | None) -> str | None:
    """sha256 of an array's dtype, shape and values (an object array's values as strings)."""
    if a is None:
        return None
    data = json.dumps([str(v) for v in a]).encode() if a.dtype == object else np.ascontiguousarray(a).tobytes()
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + data).hexdigest()


def labelled_positions(col: Collection, target: str = "label", kind: str | None = None) -> np.ndarray:
    """The positions of ``col``'s samples that have a ``target``."""
    return np.flatnonzero(_targets(col, target, kind)[1])


def _targets(col: Collection, target: str, kind: str | None) -> tuple[np.ndarray, np.ndarray, str, list[str] | None]:
    """(targets of every sample, which are labelled, kind, class names)."""
    if target == "label":
        if not col.has_labels():
            raise UnlabeledError(
                f"task {col.path} has no labels; import a labelled collection, or name a column to predict "
                f"with --target-column (its columns: {', '.join(col.columns) or 'none'})"
            )
        if kind == REGRESSION:
            raise UnlabeledError("the label column holds classes; name a numeric column for a regression task")
        return col.labels, col.labels != NO_LABEL, CLASSIFICATION, col.classes
    values = col.column(target)
    numeric = values.dtype != object
    kind = kind or (REGRESSION if numeric else CLASSIFICATION)
    if kind == REGRESSION:
        if not numeric:
            raise UnlabeledError(f"column {target!r} of {col.path} is not numeric; it cannot be a regression target")
        return values, np.isfinite(values), kind, None  # an infinite target is no label (it broke the fits)
    present = np.array([v is not None and not (isinstance(v, float) and np.isnan(v)) for v in values])
    names = sorted({str(v) for v in values[present]})
    code = {c: i for i, c in enumerate(names)}
    y = np.array([code[str(v)] if ok else NO_LABEL for v, ok in zip(values, present, strict=True)], dtype=np.int64)
    return y, present, kind, names


def _groups(col: Collection, column: str) -> np.ndarray:
    values = col.column(column)
    # a sample without a group is its own group
    return np.array(
        [
            f"\0{i}" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
            for i, v in zip(col.ids, values, strict=True)
        ],
        dtype=object,
    )


def check_task_settings(split: str, kind: str | None, metric: str | None, group: str | None) -> None:
    """What a task's settings can be checked for before its data is read (a suite file checks
    every task's at once): the split rule, the kind, a metric of that kind (of either, where
    the kind comes from the data), and a group column for a group-aware split."""
    if split not in SPLITS:
        raise UnlabeledError(f"unknown split rule {split!r}; choose from {', '.join(SPLITS)}")
    if kind not in (None, CLASSIFICATION, REGRESSION):
        raise UnlabeledError(f"task kind must be {CLASSIFICATION} or {REGRESSION}, got {kind!r}")
    known = sorted({m for k in ((CLASSIFICATION, REGRESSION) if kind is None else (kind,)) for m in metrics_for(k)})
    if metric is not None and metric not in known:
        every = {m for k in (CLASSIFICATION, REGRESSION) for m in metrics_for(k)}
        what = f"not a {kind} metric" if metric in every else "an unknown metric"  # r2 asked of classes
        raise UnlabeledError(f"{metric!r} is {what}; choose from {', '.join(known)}")
    if split == "group" and group is None:
        raise UnlabeledError("a group-aware split needs a group column (--group-column)")


def make_task(
    col: Collection,
    *,
    name: str | None = None,
    target: str = "label",
    kind: str | None = None,
    metric: str | None = None,
    group: str | None = None,
    split: str = "auto",
) -> Task:
    """The task of predicting ``target`` (``label`` or another column) of ``col``'s labelled
    samples. ``kind``: ``classification`` or ``regression`` (default: from the column).
    ``metric``: the primary metric (default accuracy, or MAE for regression). ``group``: a
    column whose values must never be on both sides of a split. ``split``: ``auto`` (the
    collection's own train/test split if it has one that respects the groups, else a seeded
    80/20 split), ``given``, ``stratified`` or ``group``."""
    check_task_settings(split, kind, metric, group)
    y, labelled, kind, classes = _targets(col, target, kind)
    metric = metric or DEFAULT_METRIC[kind]
    try:
        check_metric(kind, metric)  # the kind the column gave, where none was named
    except ValueError as e:
        raise UnlabeledError(str(e)) from None
    groups = _groups(col, group) if group is not None else None
    pos = np.flatnonzero(labelled)
    if kind == CLASSIFICATION and target != "label" and len(pos) > 1 and len(np.unique(y[pos])) == len(pos):
        raise UnlabeledError(f"column {target!r} of {col.path} holds another value for every sample: it is no target")
    if len(pos) < 4:
        raise UnlabeledError(f"task {col.path} has {len(pos)} labelled samples; a benchmark needs at least 4")

    train, test, note = _split(col, pos, y if kind == CLASSIFICATION else None, groups, group, split)
    if not len(test) or not len(train):
        raise UnlabeledError(f"task {col.path}: the split left no {'test' if not len(test) else 'train'} samples")
    if kind == CLASSIFICATION and len(np.unique(y[train])) < 2:
        k = int(y[train][0])
        only = classes[k] if classes is not None and k < len(classes) else k
        raise UnlabeledError(f"task {col.path}: its train split holds one class ({only!r}); a classifier needs two")
    return Task(
        name=name or col.name,
        collection=col,
        kind=kind,
        metric=metric,
        target=target,
        train=train,
        test=test,
        y_train=y[train],
        y_test=y[test],
        groups_train=None if groups is None else groups[train],
        split=note,
        classes=classes,
    )


def _split(
    col: Collection,
    pos: np.ndarray,
    classes_of: np.ndarray | None,
    groups: np.ndarray | None,
    group: str | None,
    split: str,
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, test, how) among the labelled positions ``pos``: the collection's own split
    when the rule allows it and it respects the groups, else a seeded 80/20 split
    (stratified by ``classes_of`` when given, group-disjoint when ``groups`` are)."""
    given = col.splits is not None and {"train", "test"} <= set(col.splits[pos])
    if split == "given" and not given:
        held = (
            "has no train/test split column"
            if col.splits is None
            else "has no labelled samples in both a train and a test split"
        )
        raise UnlabeledError(f"{col.path} {held}; use --split stratified or group")
    if split == "auto" and not given and col.splits is not None and "test" in set(col.splits[pos]):
        # its test samples were set aside by whoever made it: carving 80% of them into a
        # probe's training set would train on them without being asked
        raise UnlabeledError(
            f"{col.path}'s labelled samples have a test split but no train split to fit probes on; "
            "give --split stratified (or group) to carve 80/20 of them all"
        )
    train = test = None
    if given and split in ("auto", "given"):
        train = pos[col.splits[pos] == "train"]
        test = pos[col.splits[pos] == "test"]
        note = "the collection's train/test split"
        if groups is not None:
            shared = set(groups[train]) & set(groups[test])
            if shared and split == "given":
                raise UnlabeledError(
                    f"the collection's split puts {len(shared)} {group} value(s) on both sides, "
                    f"e.g. {sorted(shared)[:3]}; use --split group"
                )
            if shared:
                train = test = None  # fall through to a group-aware split
            else:
                note += f", {group}-disjoint"
    if train is None:
        fit, held = holdout_split(
            len(pos),
            TEST_FRACTION,
            0,
            None if classes_of is None else classes_of[pos],
            None if groups is None else groups[pos],
        )
        train, test = pos[fit], pos[held]
        how = "stratified " if classes_of is not None else "random "
        note = f"{how}80/20 split of the labelled samples, seed 0" + (
            f", {group}-disjoint (no {group} on both sides)" if groups is not None else ""
        )
    return train, test, note


def task_split(col: Collection) -> tuple[np.ndarray, np.ndarray, str]:
    """(train positions, test positions, how the split was made) among labelled samples."""
    t = make_task(col)
    return t.train, t.test, t.split
