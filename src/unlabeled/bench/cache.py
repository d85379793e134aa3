"""The score cache: finished probe fits of an interrupted bench, so that a rerun into the same
folder does not redo them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from unlabeled.bench.protocol import Score
from unlabeled.bench.result import jsonable
from unlabeled.train import checkpoint as ckpt

CACHE_FILE = "bench-cache.jsonl"


class ScoreCache:
    """Finished probe fits of an interrupted bench, in ``OUT/bench-cache.jsonl``, one line
    per fit, keyed by the content of everything its score depends on (:meth:`Task.digest
    <unlabeled.bench.tasks.Task.digest>`: the task's samples, split, targets and groups as
    they are now; :meth:`Run.digest <unlabeled.runs.Run.digest>`: the model's weights,
    architecture, seed and modality; then the probe, the setting, the seed), never by a
    path or a step, so a run overwritten in place or a relabelled collection is fitted
    anew; a rerun into the same ``out`` with nothing changed skips them. Lines are appended
    and flushed as fits finish, so a kill loses at most the fits in flight; a torn last line
    is ignored."""

    # bump when the protocol or the key changes what a score means (2: keys by content; 3: a
    # draw alike for every seed, 100% of the labels, fitted once; 4: a fine-tuning probe's
    # refit trains the epochs its validation split chose)
    VERSION = 4

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, Score] = {}
        if path.exists():
            good = []
            # a damaged byte spoils its line, not the file (the lines written are ASCII JSON)
            for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
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
            f.write(json.dumps({"key": key, "score": dataclasses.asdict(score)}, default=jsonable) + "\n")
            f.flush()
