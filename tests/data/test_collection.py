import numpy as np
import pytest

from unlabeled import UnlabeledError, open_collection
from unlabeled.data.collection import CollectionWriter


def _write(dest, n=50, shard_bytes=256 << 20, **kw):
    w = CollectionWriter(dest, "image", (1, 4, 4), "uint8", ["a", "b"], shard_bytes=shard_bytes, **kw)
    x = np.arange(n * 16, dtype=np.int64).reshape(n, 1, 4, 4) % 251
    w.add(x, [f"s{i}" for i in range(n)], np.arange(n) % 2, ["train"] * (n - 10) + ["test"] * 10)
    return w.close(), x.astype(np.uint8)


def test_roundtrip_across_shards(tmp_path):
    col, x = _write(tmp_path / "c", n=50, shard_bytes=16 * 7)  # 7 samples a shard
    assert len(col.meta["shards"]) == 8
    col = open_collection(tmp_path / "c")
    order = np.array([49, 0, 13, 7, 6, 22])
    np.testing.assert_array_equal(col.get(order), x[order])
    assert col.labels.tolist() == (np.arange(50) % 2).tolist()
    assert len(col.indices("train")) == 40 and len(col.indices(exclude="test")) == 40
    assert col.positions(["s3", "s40"]).tolist() == [3, 40]


def test_arrays_are_memory_mapped(tmp_path):
    col, _ = _write(tmp_path / "c")
    col.get([0])
    assert isinstance(col._arrays[0], np.memmap)


def test_unknown_ids_are_listed(tmp_path):
    col, _ = _write(tmp_path / "c")
    with pytest.raises(UnlabeledError, match="nope"):
        col.positions(["s1", "nope"])


def test_existing_destination_is_kept_without_overwrite(tmp_path):
    _write(tmp_path / "c", n=20)
    with pytest.raises(UnlabeledError, match="already exists"):
        _write(tmp_path / "c", n=30)
    assert len(open_collection(tmp_path / "c")) == 20
    _write(tmp_path / "c", n=30, overwrite=True)
    assert len(open_collection(tmp_path / "c")) == 30


def test_aborted_write_leaves_nothing(tmp_path):
    w = CollectionWriter(tmp_path / "c", "image", (1, 2, 2), "uint8")
    w.add(np.zeros((3, 1, 2, 2)), ["a", "b", "c"])
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_duplicate_ids_rejected(tmp_path):
    w = CollectionWriter(tmp_path / "c", "image", (1, 2, 2), "uint8")
    w.add(np.zeros((2, 1, 2, 2)), ["a", "a"])
    with pytest.raises(UnlabeledError, match="occur more than once"):  # a user's input error, not a bug
        w.close()
    assert not (tmp_path / "c").exists() and not list(tmp_path.iterdir())  # the temporary folder went too


def test_not_a_collection(tmp_path):
    with pytest.raises(UnlabeledError, match="not a collection"):
        open_collection(tmp_path)
