"""Development splits for choosing recipes without the test split: a collection's train split
alone, with a seeded share of it marked ``test`` (the benchmarks' dev set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import unlabeled as ul
from unlabeled.data.collection import INDEX_FILE, derive_collection

SEED = 12345


def dev_collection(col: ul.Collection, dest: Path, size: int, name: str) -> ul.Collection:
    """``col``'s samples outside its test split, ``size`` of them (seeded) marked as test."""
    if (dest / INDEX_FILE).exists():
        return ul.open_collection(dest)
    train = col.indices(exclude="test")
    derive_collection(col, train, dest, {"name": name}, overwrite=True)
    table = pq.read_table(dest / INDEX_FILE)
    split = np.array(["train"] * len(train), dtype=object)
    split[np.random.default_rng(SEED).choice(len(train), size, replace=False)] = "test"
    table = table.set_column(table.schema.get_field_index("split"), "split", pa.array(split.tolist(), pa.string()))
    pq.write_table(table, dest / INDEX_FILE)
    return ul.open_collection(dest)
