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
    per fit, keyed by everything its score depends on (the task's data, split and target, the
    model's weights, the probe, the setting, the seed); a rerun into the same ``out`` skips
    them. Lines are appended and flushed as fits finish, so a kill loses at most the fits in
    flight; a torn last line is ignored."""

    VERSION = 1  # bump when the protocol changes what a score means

    def __init__(self, path: Path) -> None:
        self.path = path
        self.scores: dict[str, Score] = {}
        if path.exists():
            good = []
            for line in path.read_text().splitlines():
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
