"""The score cache is keyed by content: a run overwritten in place (same folder, same step
count, other weights) and a relabelled or re-split collection are fitted anew, while an
unchanged rerun takes every fit from the cache."""

import shutil
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import unlabeled as ul
from unlabeled.data.collection import INDEX_FILE

KW = dict(fractions=[0.5], seeds=1, probes=["linear"], baselines=["raw", "random-init"], n_jobs=1)


def count_fits(monkeypatch) -> list:
    """The probe fits the bench runs from now on (those not taken from the cache), one per seed."""
    module = sys.modules["unlabeled.bench.jobs"]
    calls: list = []
    real = module.fit_and_score
    monkeypatch.setattr(module, "fit_and_score", lambda *a: calls.append(a) or real(*a))
    return calls


def rewrite_index(col: ul.Collection, **columns) -> ul.Collection:
    """``col`` with index columns replaced or added, reopened."""
    path = col.path / INDEX_FILE
    table = pq.read_table(path)
    for name, values in columns.items():
        array = pa.array(values)
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, array)
        else:
            table = table.append_column(name, array)
    pq.write_table(table, path)
    return ul.open_collection(col.path)


def scores(result) -> dict:
    return {(r["model"], r["probe"], r["setting"]): r["scores"] for r in result.rows}


@pytest.mark.slow
def test_a_run_overwritten_in_place_is_fitted_anew(digits, tmp_path, monkeypatch):
    folder, out = tmp_path / "run", tmp_path / "out"
    run = ul.pretrain(digits, folder, epochs=1, batch_size=64, seed=0)
    first = ul.bench(run, digits, out=out, **KW)
    calls = count_fits(monkeypatch)
    assert scores(ul.bench(run, digits, out=out, **KW)) == scores(first) and not calls  # unchanged: all cached
    again = ul.pretrain(digits, folder, epochs=1, batch_size=64, seed=1, overwrite=True)
    assert again.step == run.step and again.path == run.path
    second = ul.bench(again, digits, out=out, **KW)
    # the run's weights and the random-init baseline's seed changed; raw features did not
    assert len(calls) == 2
    calls.clear()
    fresh = ul.bench(again, digits, out=tmp_path / "fresh", **KW)  # no cache at all
    assert len(calls) == 3 and scores(second) == scores(fresh) != scores(first)


@pytest.mark.slow
def test_a_relabelled_or_resplit_collection_is_fitted_anew(digits, tmp_path, monkeypatch):
    """Relabelled and re-split with the counts kept (the same number of train samples, of
    each class): only the labels and the split's members differ."""
    shutil.copytree(digits.path, tmp_path / "digits")
    split = np.where(np.arange(len(digits)) < 1400, "train", "test")
    col = rewrite_index(ul.open_collection(tmp_path / "digits"), split=split.tolist())
    run = ul.pretrain(col, tmp_path / "run", epochs=1, batch_size=64)
    out = tmp_path / "out"
    ul.bench(run, col, out=out, **KW)
    calls = count_fits(monkeypatch)
    labels = col.labels.copy()
    labels[:300] = np.random.default_rng(0).permutation(labels[:300])  # some samples relabelled
    col = rewrite_index(col, label=labels)
    ul.bench(run, col, out=out, **KW)
    assert len(calls) == 3  # every model's fit: the task changed
    calls.clear()
    split[[0, 1, 2, -1, -2, -3]] = split[[-1, -2, -3, 0, 1, 2]]  # three train and three test samples change sides
    col = rewrite_index(col, split=split.tolist())
    resplit = ul.bench(run, col, out=out, **KW)
    assert len(calls) == 3
    calls.clear()
    assert scores(ul.bench(run, col, out=out, **KW)) == scores(resplit) and not calls  # unchanged: all cached


def test_a_damaged_byte_in_the_cache_file_loses_its_line_not_the_cache(tmp_path):
    from unlabeled.bench.cache import ScoreCache
    from unlabeled.bench.protocol import Score

    path = tmp_path / "bench-cache.jsonl"
    cache = ScoreCache(path)
    cache.add("a", Score(0.5, {"C": 1.0}, 10))
    cache.add("b", Score(0.75, None, 20))
    path.write_bytes(path.read_bytes().replace(b'"b"', b'"\xff"') + b"\xfe garbage\n")
    again = ScoreCache(path)  # read: a UnicodeDecodeError stopped every later bench into the folder
    assert set(again.scores) == {"a", "\ufffd"} and again.scores["a"].value == 0.5
    assert path.read_bytes().decode("utf-8").count("\n") == 2  # the garbage line dropped
