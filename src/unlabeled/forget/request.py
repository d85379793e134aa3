"""A forget request, once checked: the run it is made of, the samples to forget and to keep,
where the new run goes and how it is trained. Every method receives one."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection, open_collection
from unlabeled.runs import TRAINING_IDS, Run, write_ids
from unlabeled.train import checkpoint as ckpt


def ids_hash(ids: list[str]) -> str:
    """A request's ids as one hash; JSON, since an id may hold a line break (["a\\nb"] and
    ["a", "b"] hashed alike when they were joined by lines)."""
    return hashlib.sha256(json.dumps(sorted(ids), ensure_ascii=False).encode()).hexdigest()[:16]


def source_task(run: Run) -> Collection:
    """The collection a classifier was fine-tuned on, or an encoder pretrained on, checked
    unchanged since. A mixture (``--mix``) is refused in words: its record names the first
    part's path beside the whole mixture's fingerprint, which read as that part changed."""
    where = run.config["task"] if run.kind == "classifier" else run.config["data"]
    if "mix" in where:
        raise UnlabeledError(
            f"{run.path} was pretrained on a mixture of collections (--mix); it cannot be forgotten from"
        )
    task = open_collection(where["path"])
    if task.fingerprint() != where["fingerprint"]:
        raise UnlabeledError(f"{task.path} changed since {run.path} was trained on it")
    return task


def forget_set(run: Run, task: Collection, ids: list[str] | None, class_: str | int | None) -> np.ndarray:
    """Positions (in the task) of the samples to forget, checked against the training set."""
    if ids is None and class_ is None:
        raise UnlabeledError("say what to forget: --ids FILE, --class NAME, or --group COLUMN --values FILE")
    if ids is not None and class_ is not None:
        raise UnlabeledError("say what to forget one way: --ids FILE or --class NAME, not both")
    trained = set(run.training_ids())
    if ids is not None:
        ids = [str(i) for i in ids]
        missing = [i for i in ids if i not in trained]
        if missing:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise UnlabeledError(f"{len(missing)} id(s) are not in the training set of {run.path}: {shown}")
        return np.sort(task.positions(sorted(set(ids))))
    if task.labels is None:
        raise UnlabeledError(f"{task.path} has no labels, so no class to forget; give --ids or --group")
    classes = task.classes or []
    name = str(class_)
    if name in classes:
        code = classes.index(name)
    # ASCII digits alone: "²" is a digit int() cannot read (a traceback), "١" one it reads as 1
    elif name.isascii() and name.isdecimal() and int(name) < max(len(classes), int(task.labels.max()) + 1):
        code = int(name)
    else:
        raise UnlabeledError(f"class {class_!r} does not exist; classes: {', '.join(classes) or 'none named'}")
    pos = task.positions(sorted(trained))
    return np.sort(pos[task.labels[pos] == code])


def group_ids(run: Run, task: Collection, column: str, values: Sequence[Any] | None) -> list[str]:
    """The training ids whose ``column`` (``group``, or any column of the index: an author, a
    patient, a speaker) holds one of ``values``; a value the column never holds is an error."""
    if isinstance(values, str):  # a patient "12" is not patients 1 and 2
        raise UnlabeledError(f"values must be a list of {column} values, got the string {values!r}")
    values = [str(v) for v in values or []]
    if not values:
        raise UnlabeledError(f"--values names no {column} to forget")
    held = (
        _label_names(task)
        if column == "label" and task.labels is not None
        else np.asarray([_value_name(v) for v in task.column(column)], dtype=object)
    )
    unknown = sorted(set(values) - set(held))
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        raise UnlabeledError(f"{len(unknown)} {column} value(s) are not in {task.path}: {shown}")
    pos = task.positions(sorted(run.training_ids()))
    return [str(i) for i in task.ids[pos[np.isin(held[pos], list(values))]]]


def _value_name(v: Any) -> str:
    """A column's value as a ``--values`` file writes it: a whole number without the ".0" that
    the index's float column gives it (a patient 12 was "12.0", and "12" was not found)."""
    if isinstance(v, float | np.floating) and np.isfinite(v) and float(v).is_integer():
        return str(int(v))
    return str(v)


def _label_names(task: Collection) -> np.ndarray:
    """Each sample's class as ``--class`` names it (its name, or its number where the classes
    have none; "" unlabelled): the label column holds class numbers, which "--group label"
    would otherwise compare as "0.0" against a value of "0"."""
    names = task.classes or []
    return np.asarray(
        ["" if y < 0 else names[y] if y < len(names) else str(y) for y in task.labels.astype(int)], dtype=object
    )


@dataclass(frozen=True, eq=False)
class ForgetRequest:
    """What a method needs to make the new run. ``epochs`` and ``lr`` are the caller's
    overrides (None: the method's defaults), ``options`` its settings of the method's objective
    (checked against the method's ``settings``). ``record`` is what the new run's config holds
    under ``forget`` while the request runs (request id, method, source, ids hash, count,
    class); it gains its time and end once the request has finished."""

    source: Run
    task: Collection
    forget_pos: np.ndarray
    retain_pos: np.ndarray
    out: Path
    seed: int
    device: str
    epochs: float | None
    lr: float | None
    overwrite: bool
    record: dict[str, Any]
    start: Run | None = None  # an exact method's starting point, where an ancestor was retrained
    options: dict[str, float] = field(default_factory=dict)

    @property
    def forgotten_ids(self) -> list[str]:
        return [str(i) for i in self.task.ids[self.forget_pos]]

    def save(self, config: dict[str, Any]) -> Run:
        """Write the new run's training ids (what is kept) and its ``config`` with the request
        recorded in it; a config without a finished request marks the run as one to redo."""
        self.out.mkdir(parents=True, exist_ok=True)
        write_ids(self.out / TRAINING_IDS, self.task.ids[self.retain_pos])
        ckpt.atomic_write_json(self.out / "config.json", {**config, "forget": self.record})
        return Run(self.out)
