import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import unlabeled as ul
from unlabeled.runs import features, read_embeddings
from unlabeled.train import checkpoint as ckpt


@pytest.fixture(scope="module")
def run(fmnist_small, tmp_path_factory):
    return ul.pretrain(fmnist_small, tmp_path_factory.mktemp("runs") / "r", epochs=0.2, batch_size=64)


def test_embed_writes_every_id(run, fmnist_small):
    path = ul.embed(run, fmnist_small)
    ids, vectors, meta = read_embeddings(path)
    assert path == run.path / "embeddings.parquet"
    assert (ids == fmnist_small.ids).all() and vectors.shape == (len(fmnist_small), 256)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()
    assert meta["fingerprint"] == fmnist_small.fingerprint() and meta["step"] == str(run.step)
    direct = run.encode(fmnist_small, np.arange(10))
    np.testing.assert_allclose(vectors[:10], direct, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(features(run, fmnist_small, np.arange(10)), vectors[:10])


def test_embeddings_of_other_weights_at_the_same_step_are_not_reused(run, fmnist_small, tmp_path):
    ul.embed(run, fmnist_small)
    shutil.copytree(run.path, tmp_path / "r")
    other = ul.open_run(tmp_path / "r")  # its weights rewritten in place, the step kept
    weights = {k: v + 0.05 if v.is_floating_point() else v for k, v in other.weights().items()}
    ckpt.save_weights(other.path / ckpt.MODEL_FILE, weights, {"step": str(run.step)})
    assert other.step == run.step and other.digest() != run.digest()
    _, stale, _ = read_embeddings(other.path / "embeddings.parquet")
    fresh = features(other, fmnist_small, np.arange(10))
    np.testing.assert_array_equal(fresh, other.encode(fmnist_small, np.arange(10)))
    assert not np.allclose(fresh, stale[:10])
    np.testing.assert_array_equal(features(run, fmnist_small, np.arange(10)), stale[:10])  # its own: reused


def test_random_init_differs_from_trained(run, fmnist_small):
    trained = run.encode(fmnist_small, np.arange(8))
    random = run.encode(fmnist_small, np.arange(8), trained=False)
    assert not np.allclose(trained, random)
    np.testing.assert_array_equal(random, run.encode(fmnist_small, np.arange(8), trained=False))


def test_reopen_by_path(run):
    again = ul.open_run(str(run.path))
    assert again.step == run.step and again.method == "simclr"
    with pytest.raises(ul.UnlabeledError, match="not a run"):
        ul.open_run(run.path.parent)


def test_embed_writes_parquet_only_where_asked_for_parquet(run, fmnist_small, tmp_path):
    from unlabeled import UnlabeledError

    with pytest.raises(UnlabeledError, match=r"written as Parquet; name the file \*\.parquet"):
        ul.embed(run, fmnist_small, tmp_path / "e.csv")
    (tmp_path / "d.parquet").mkdir()
    with pytest.raises(UnlabeledError, match="is a folder"):
        ul.embed(run, fmnist_small, tmp_path / "d.parquet")


def test_embed_never_replaces_a_collections_index_or_a_users_table(run, fmnist_small, tmp_path):
    """``embed --out`` replaced any existing .parquet: a collection's index.parquet (the
    collection unreadable after) or a user's own table. It now refuses a path inside a
    collection, and another file unless told to overwrite; its own embeddings it rewrites."""
    from unlabeled import UnlabeledError

    index = fmnist_small.path / "index.parquet"
    before = index.read_bytes()
    with pytest.raises(UnlabeledError, match="lies inside the collection"):
        ul.embed(run, fmnist_small, index, overwrite=True)
    assert index.read_bytes() == before
    mine = tmp_path / "mine.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), mine)
    with pytest.raises(UnlabeledError, match="not an embeddings file; pass --overwrite"):
        ul.embed(run, fmnist_small, mine)
    assert pq.read_table(mine).column_names == ["a"]
    ul.embed(run, fmnist_small, mine, overwrite=True)
    ul.embed(run, fmnist_small, mine)  # now an embeddings file: written again without asking
    assert read_embeddings(mine)[1].shape == (len(fmnist_small), 256)


def test_a_run_trained_in_fp32_is_embedded_in_fp32(run, fmnist_small, tmp_path):
    """A run trained with ``--precision fp32`` (what a CPU without bf16 runs) embeds in fp32 on
    every machine: its features, the bench's and ``embed``'s, no longer depend on whether this
    CPU has bf16 kernels, and the digest that keys the bench's cache says which precision."""
    shutil.copytree(run.path, tmp_path / "r")
    cfg_path = tmp_path / "r" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["precision"] = "fp32"
    cfg_path.write_text(json.dumps(cfg))
    fp32_run = ul.open_run(tmp_path / "r")
    assert run.precision == "auto" and fp32_run.precision == "fp32"
    assert fp32_run.digest() != run.digest()  # same weights, another precision: another cache key
    pos = np.arange(16)
    own = fp32_run.encode(fmnist_small, pos)
    np.testing.assert_array_equal(own, run.encode(fmnist_small, pos, precision="fp32"))
    path = ul.embed(fp32_run, fmnist_small)
    _, vectors, meta = read_embeddings(path)
    assert meta["precision"] == "fp32" and meta["computed_in"] == "fp32"
    np.testing.assert_array_equal(vectors[pos], own)
    # "auto" says what was asked; computed_in what this CPU ran (bf16 where it has the kernels)
    from unlabeled.runtime import bf16_available

    _, _, auto = read_embeddings(ul.embed(run, fmnist_small, out=tmp_path / "auto.parquet"))
    assert auto["precision"] == "auto"
    assert auto["computed_in"] == ("bf16" if bf16_available(torch.device("cpu")) else "fp32")
    bf16 = run.encode(fmnist_small, pos, precision="bf16")  # emulated where the CPU has no bf16
    assert not np.array_equal(bf16, own)  # the precision argument reaches the kernels
    ul.embed(fp32_run, fmnist_small, precision="bf16")  # by hand, in another precision:
    np.testing.assert_array_equal(features(fp32_run, fmnist_small, pos), own)  # not reused as its features


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_embed_refuses_a_batch_size_below_one(run, fmnist_small, tmp_path, batch_size):
    # -1 made range() run no batch and returned np.empty's leftover memory as the embeddings
    with pytest.raises(ul.UnlabeledError, match="batch_size must be a whole number"):
        ul.embed(run, fmnist_small, out=tmp_path / "e.parquet", batch_size=batch_size)
    with pytest.raises(ul.UnlabeledError, match="batch_size"):
        run.encode(fmnist_small, np.arange(4), batch_size=batch_size)
    assert not list(tmp_path.iterdir())


def test_embed_makes_the_out_folder_before_embedding(run, fmnist_small, tmp_path):
    path = ul.embed(run, fmnist_small, out=tmp_path / "new" / "deeper" / "e.parquet")
    assert len(read_embeddings(path)[0]) == len(fmnist_small)


_HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()}\\n".encode())
print("held", flush=True)
time.sleep(60)
"""


def test_a_run_another_process_is_writing_is_refused_until_it_stops(run, tmp_path):
    import subprocess
    import sys

    from unlabeled.runs import lock_file

    copy = tmp_path / "r"
    shutil.copytree(run.path, copy)
    writer = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(lock_file(copy))], stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline() == b"held\n"
        with pytest.raises(ul.UnlabeledError, match=f"being written by another process \\(pid {writer.pid}\\)"):
            ul.open_run(copy)
    finally:
        writer.kill()
        writer.wait()
    assert lock_file(copy).exists() and ul.open_run(copy).step == run.step  # a killed writer's lock holds nothing


def test_open_run_and_open_collection_name_what_they_were_given_instead(run, fmnist_small):
    with pytest.raises(ul.UnlabeledError, match="expected a run .* got Collection"):
        ul.open_run(fmnist_small)
    with pytest.raises(ul.UnlabeledError, match="expected a collection .* got Run"):
        ul.open_collection(run)
    with pytest.raises(ul.UnlabeledError, match="expected a collection .* got ndarray"):
        ul.pretrain(np.zeros((10, 1, 8, 8)), "unused", epochs=1)


def test_a_missing_config_entry_is_one_line_and_a_key_error(run, tmp_path):
    copy = tmp_path / "r"
    shutil.copytree(run.path, copy)
    config = ul.open_run(copy).config
    with pytest.raises(KeyError) as caught:  # code that catches a KeyError still does
        config["nope"]
    assert isinstance(caught.value, ul.UnlabeledError) and str(caught.value).endswith("make the run again")
    assert not str(caught.value).startswith("'")  # KeyError's own str() would quote it


def test_reprs_are_short(run, fmnist_small, tmp_path):
    from unlabeled.bench.result import BenchResult

    rows = [{"task": "t", "model": m, "probe": "linear"} for m in ("a", "b") for _ in range(50)]
    assert repr(BenchResult(rows, {})) == "BenchResult(tasks=['t'], models=['a', 'b'], rows=100, json_path=None)"
    assert "classes=10" in repr(fmnist_small)
    from unlabeled.data.collection import CollectionWriter

    w = CollectionWriter(tmp_path / "u", "image", (1, 2, 2), "uint8")
    w.add(np.zeros((2, 1, 2, 2)), ["a", "b"])
    assert "classes=None" in repr(w.close())  # not 0 classes: no labels at all


def test_bench_refuses_a_run_given_twice_and_a_bad_device_before_making_its_folder(run, fmnist_small, tmp_path):
    with pytest.raises(ul.UnlabeledError, match="is given twice"):
        ul.bench([run, str(run.path)], task=fmnist_small, out=tmp_path / "a")
    with pytest.raises(ul.UnlabeledError, match="--device bogus"):
        ul.bench(run, task=fmnist_small, out=tmp_path / "b", device="bogus")
    assert not list(tmp_path.iterdir())


def test_embeddings_whose_weights_changed_while_embedding_are_not_written(run, fmnist_small, tmp_path, monkeypatch):
    """A run rewritten while embed read it (its writer's lock taken after embed looked) gave
    vectors of one version labelled with another's hash, which bench and select then trusted."""
    copy = tmp_path / "r"
    shutil.copytree(run.path, copy)
    moved = ul.open_run(copy)
    real = type(moved).encode

    def encode_then_rewrite(self, *args, **kwargs):
        vectors = real(self, *args, **kwargs)
        weights = ckpt.load_weights(copy / ckpt.MODEL_FILE)
        ckpt.save_weights(copy / ckpt.MODEL_FILE, {k: v + 1 for k, v in weights.items()}, {"step": str(moved.step)})
        return vectors

    monkeypatch.setattr(type(moved), "encode", encode_then_rewrite)
    with pytest.raises(ul.UnlabeledError, match="weights changed while they were read"):
        ul.embed(moved, fmnist_small, out=tmp_path / "e.parquet")
    assert not (tmp_path / "e.parquet").exists()


def test_ids_with_line_breaks_or_quotes_read_back_whole(tmp_path):
    """A CSV's quoted id over two lines, or a JSON id holding U+2028, was written as one line and
    read back as two ids (``str.splitlines``): forget then named them "not in the run"."""
    from unlabeled.runs import read_ids, write_ids

    ids = ["plain", "two\nlines", "para\u2028sep", "\rcr", '"quoted', '"{}"', "  spaced  ", "ünï"]
    write_ids(tmp_path / "ids.txt", ids)
    assert read_ids(tmp_path / "ids.txt") == ids
    (tmp_path / "old.txt").write_text("a\nb\n")  # a file of older runs reads as before
    assert read_ids(tmp_path / "old.txt") == ["a", "b"]
