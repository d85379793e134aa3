"""Benchmark suites: a named list of tasks in a small TOML file.

    name = "ucr-small"
    modality = "series"

    [[task]]
    name = "GunPoint"
    source = "ucr:GunPoint"      # a collection folder, or what `unlabeled import` takes
    metric = "accuracy"          # optional; default accuracy (classification) or mae (regression)
    target = "label"             # optional; another column makes a regression task if numeric
    group = "patient"            # optional; no group on both sides of any split
    split = "auto"               # optional; auto | given | stratified | group

Built-in suites live beside this file (``unlabeled bench --suite ucr-small``); any other
suite is a path to such a file, whose relative ``source`` paths are relative to the file.
Tasks are imported once into ``data_dir/<suite>/<task>`` (default
``$UNLABELED_DATA`` or ``~/.cache/unlabeled/suites``) and reused.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlabeled._console import UnlabeledError, info, not_utf8
from unlabeled.bench.tasks import Task, check_task_settings, make_task
from unlabeled.data import import_source
from unlabeled.data.collection import META_FILE, open_collection
from unlabeled.data.importers import is_named_source, source_fingerprint
from unlabeled.modalities import MODALITIES
from unlabeled.train import checkpoint as ckpt

SUITES_DIR = Path(__file__).parent / "suites"
TASK_KEYS = {"name", "source", "metric", "target", "kind", "group", "split", "modality", "columns"}


@dataclass
class TaskSpec:
    name: str
    source: str
    options: dict[str, Any] = field(default_factory=dict)  # metric, target, kind, group, split
    modality: str | None = None
    columns: list[str] = field(default_factory=list)


@dataclass
class Suite:
    name: str
    description: str
    tasks: list[TaskSpec]
    path: Path

    def load(self, data_dir: str | os.PathLike[str] | None = None) -> list[Task]:
        """The suite's tasks, importing each source the first time."""
        root = Path(data_dir or os.environ.get("UNLABELED_DATA") or Path.home() / ".cache/unlabeled/suites")
        tasks = []
        for spec in self.tasks:
            dest = root / self.name / spec.name
            if (Path(spec.source) / META_FILE).is_file():
                dest = Path(spec.source)  # already a collection
            else:
                _import_once(self.name, spec, dest)
            tasks.append(make_task(open_collection(dest), name=spec.name, **spec.options))
        return tasks


def _import_once(suite: str, spec: Any, dest: Path) -> None:
    """Import ``spec``'s source into ``dest`` unless the import there was made of the same
    source as it is now (its files' names, sizes and times, the modality and columns asked for):
    a source edited since, or another suite's task of the same names, is imported again."""
    made_of = {
        "source": str(spec.source),
        "fingerprint": source_fingerprint(spec.source),
        "modality": spec.modality,
        "columns": list(spec.columns or ()),
    }
    stamp = dest.parent / f".{dest.name}.source.json"
    if (dest / META_FILE).is_file():
        try:
            if json.loads(stamp.read_text()) == made_of:
                return
        except (OSError, ValueError):
            pass
        info(f"suite {suite}: {spec.source} is not what {dest} was imported from (or changed since): importing again")
    else:
        info(f"suite {suite}: importing {spec.source} -> {dest}")
    as_files = {} if is_named_source(spec.source) else {"modality": spec.modality, "columns": spec.columns}
    import_source(spec.source, dest, overwrite=True, **as_files)  # a built-in is read as it is
    ckpt.atomic_write_json(stamp, made_of)


def builtin_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def load_suite(name_or_path: str | os.PathLike[str]) -> Suite:
    """A built-in suite by name, or a suite file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UnlabeledError(
                f"no suite {str(name_or_path)!r}: not a file, and the built-in suites are {', '.join(builtin_suites())}"
            )
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise UnlabeledError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise UnlabeledError(f"{path}: {not_utf8(e)}") from None
    raw_tasks = doc.get("task")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise UnlabeledError(f"{path}: a suite needs at least one [[task]] table")
    tasks, seen = [], set()
    for i, t in enumerate(raw_tasks):
        if not isinstance(t, dict):  # task = [1, 2]: a list of numbers, not of [[task]] tables
            raise UnlabeledError(f"{path}: task {i + 1} is {t!r}, not a [[task]] table")
        unknown = set(t) - TASK_KEYS
        if unknown:
            raise UnlabeledError(
                f"{path}: task {i + 1} has unknown key(s) {sorted(unknown)}; known: {sorted(TASK_KEYS)}"
            )
        if "source" not in t:
            raise UnlabeledError(f"{path}: task {i + 1} has no source")
        name = str(t.get("name") or t["source"]).replace("/", "_").replace(":", "_")
        if name in seen:
            raise UnlabeledError(f"{path}: two tasks are named {name!r}")
        seen.add(name)
        source = str(t["source"])
        if not (is_named_source(source) or Path(source).is_absolute()):
            source = str((path.parent / source).resolve())
        _check_task(f"{path}: task {name!r}", t, source)
        options = {k: t[k] for k in ("metric", "target", "kind", "group", "split") if k in t}
        tasks.append(TaskSpec(name, source, options, t.get("modality"), list(t.get("columns", []))))
    return Suite(str(doc.get("name") or path.stem), str(doc.get("description", "")), tasks, path)


def _check_task(where: str, t: dict[str, Any], source: str) -> None:
    """A suite task's settings, checked when the file is read: a mistake in its last task
    fails before the first task is imported or benched, not after."""
    for key in ("name", "source", "metric", "target", "kind", "group", "split", "modality"):
        if key in t and not isinstance(t[key], str):
            raise UnlabeledError(f"{where}: {key} must be a string, got {t[key]!r}")
    columns = t.get("columns", [])
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise UnlabeledError(f"{where}: columns must be a list of column names, got {columns!r}")
    try:
        check_task_settings(t.get("split", "auto"), t.get("kind"), t.get("metric"), t.get("group"))
    except UnlabeledError as e:
        raise UnlabeledError(f"{where}: {e}") from None
    if t.get("modality") not in (None, *MODALITIES):
        raise UnlabeledError(f"{where}: unknown modality {t['modality']!r}; choose from {', '.join(MODALITIES)}")
    if not is_named_source(source) and not Path(source).exists():
        raise UnlabeledError(f"{where}: source {source} does not exist")
