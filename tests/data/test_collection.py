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


_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from unlabeled.data import collection
from unlabeled.data.collection import CollectionWriter
dest, where = sys.argv[1], sys.argv[2]
if where == "between-renames":  # killed after the old collection was moved aside, before the new one took its place
    replace = os.replace
    def dying(a, b):
        if ".old." not in str(b):
            os.kill(os.getpid(), signal.SIGKILL)
        replace(a, b)
    collection.os.replace = dying
w = CollectionWriter(dest, "image", (1, 2, 2), "uint8", overwrite=True)
w.add(np.zeros((3, 1, 2, 2)), ["a", "b", "c"])
if where == "writing":
    os.kill(os.getpid(), signal.SIGKILL)
w.close()
"""


def _killed_writer(dest, where):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(dest), where], capture_output=True)
    assert done.returncode == -9, done.stderr.decode()


def test_a_killed_writers_temporary_folder_goes_with_the_next_write(tmp_path):
    _killed_writer(tmp_path / "c", "writing")
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".c.")  # SIGKILL ran no cleanup
    _write(tmp_path / "c", n=20)
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
    assert len(open_collection(tmp_path / "c")) == 20


def test_a_live_writers_temporary_folder_is_left_alone(tmp_path):
    first = CollectionWriter(tmp_path / "c", "image", (1, 2, 2), "uint8")  # this process: alive
    _write(tmp_path / "c", n=20)
    assert first._tmp.is_dir()
    first.abort()


def test_a_collection_moved_aside_by_a_killed_overwrite_is_put_back(tmp_path):
    _write(tmp_path / "c", n=20)
    _killed_writer(tmp_path / "c", "between-renames")
    assert not (tmp_path / "c").exists()  # the old one aside, the new one not yet in place
    with pytest.raises(UnlabeledError, match="already exists"):  # the next writer finds it back
        _write(tmp_path / "c", n=30)
    assert len(open_collection(tmp_path / "c")) == 20
    assert [p.name for p in tmp_path.iterdir()] == ["c"]
