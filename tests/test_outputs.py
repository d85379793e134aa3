"""An --out never destroys what the user has: not the run or collection a command reads, not
a collection, not a folder of other files; and a derived collection whose source was imported
again is refused instead of read as other samples."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import unlabeled as ul
from unlabeled import UnlabeledError


@pytest.fixture(scope="module")
def pool(fmnist_small, tmp_path_factory):
    """A copy of the small Fashion-MNIST slice the tests may overwrite."""
    dest = tmp_path_factory.mktemp("data") / "pool"
    shutil.copytree(fmnist_small.path, dest)
    return ul.open_collection(dest)


@pytest.fixture(scope="module")
def run(pool, tmp_path_factory):
    return ul.pretrain(pool, tmp_path_factory.mktemp("runs") / "a", epochs=0.05, batch_size=32, precision="fp32")


def test_a_run_is_not_written_into_a_collection_or_a_folder_of_other_files(pool, tmp_path):
    for overwrite in (False, True):
        with pytest.raises(UnlabeledError, match="is a collection, not a run folder"):
            ul.pretrain(pool, pool.path, epochs=0.05, batch_size=32, overwrite=overwrite)
    assert len(ul.open_collection(pool.path)) == len(pool)  # untouched
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    with pytest.raises(UnlabeledError, match=r"holds files that are not a run \(notes.txt\)"):
        ul.pretrain(pool, mine, epochs=0.05, batch_size=32, overwrite=True)
    assert (mine / "notes.txt").read_text() == "precious"
    (tmp_path / "empty").mkdir()  # an empty folder takes a run
    assert ul.pretrain(pool, tmp_path / "empty", epochs=0.05, batch_size=32, precision="fp32").finished


def test_the_run_a_command_reads_is_not_its_out(pool, run, tmp_path):
    weights = (run.path / "model.safetensors").read_bytes()
    with pytest.raises(UnlabeledError, match="is the run to start from"):
        ul.finetune(run, pool, run.path, epochs=0.05, overwrite=True)
    clf = ul.finetune(run, pool, tmp_path / "ft", epochs=0.05, precision="fp32")
    ids = clf.training_ids()[:3]
    with pytest.raises(UnlabeledError, match="is the run to forget from, which is never modified"):
        ul.forget(clf, ids=ids, out=clf.path, overwrite=True)
    assert (run.path / "model.safetensors").read_bytes() == weights and clf.finished


def test_a_selection_is_not_written_over_its_pool_and_is_refused_once_the_pool_changes(pool, tmp_path):
    with pytest.raises(UnlabeledError, match="is the pool to select from"):
        ul.select(pool, budget=10, method="random", out=pool.path, overwrite=True)
    src = tmp_path / "src"
    shutil.copytree(pool.path, src)
    chosen = ul.select(ul.open_collection(src), budget=10, method="random", out=tmp_path / "sel")
    first = ul.open_collection(chosen.path).get(np.arange(3))
    from unlabeled.data.collection import CollectionWriter

    shutil.rmtree(src)  # the pool imported again: other samples in its shards
    w = CollectionWriter(src, "image", (1, 28, 28), "uint8", None, {})
    w.add(np.random.default_rng(0).integers(0, 255, (50, 1, 28, 28), dtype=np.uint8), [f"n{i}" for i in range(50)])
    w.close()
    with pytest.raises(UnlabeledError, match="has changed since"):
        ul.open_collection(chosen.path)
    assert first.shape[0] == 3


def test_a_collection_derived_from_a_derived_one_is_refused_once_the_first_changes(pool, tmp_path):
    from unlabeled.data.collection import CollectionWriter, derive_collection

    root = tmp_path / "root"
    shutil.copytree(pool.path, root)
    mid = derive_collection(ul.open_collection(root), np.arange(100), tmp_path / "mid", {})
    leaf = derive_collection(mid, np.arange(10), tmp_path / "leaf", {})
    moved = tmp_path / "moved"
    moved.mkdir()
    for name in ("root", "mid", "leaf"):  # a workspace copied elsewhere reads its own copy
        shutil.copytree(tmp_path / name, moved / name)
    shutil.rmtree(root)  # the first collection imported again: other samples in its shards
    w = CollectionWriter(root, "image", (1, 28, 28), "uint8", None, {})
    w.add(np.zeros((200, 1, 28, 28), dtype=np.uint8), [f"n{i}" for i in range(200)])
    w.close()
    for derived in (mid, leaf):
        with pytest.raises(UnlabeledError, match="has changed since"):
            ul.open_collection(derived.path)
    assert len(ul.open_collection(moved / "leaf")) == 10  # its shards are the copy's, unchanged


def test_a_runs_own_leftovers_do_not_block_a_rerun(tmp_path):
    from unlabeled.train.run import claim_run_dir

    for leftover in ("model.safetensors", "reinforced", "shards", "training-ids.txt", ".config.json.x.tmp"):
        out = tmp_path / leftover.strip(".")
        out.mkdir()
        (out / leftover).mkdir() if "." not in leftover else (out / leftover).write_text("")
        assert claim_run_dir(out, False, False) is False  # a new run may start there


def test_a_sharded_rerun_with_fewer_shards_drops_the_interrupted_runs_extra_shards(pool, tmp_path):
    """An interrupted 3-shard run (its shards, no top-level config), then a 2-shard run into
    the same folder: shard 02 was the old run's and must not join the new one's ensemble."""
    train = pool.indices("train")[:300]
    out = tmp_path / "sisa"
    ul.finetune(None, pool, out, positions=train, epochs=0.1, shards=3, precision="fp32")
    (out / "config.json").unlink()  # as if killed before its top-level config
    run = ul.finetune(None, pool, out, positions=train, epochs=0.1, shards=2, precision="fp32")
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00", "01"]
    assert len(run.shards()) == 2 and run.finished
    assert sorted(sum((s.training_ids() for s in run.shards()), [])) == sorted(run.training_ids())
    shutil.copytree(out / "shards" / "01", out / "shards" / "07")  # a stray folder is not a shard
    assert [s.path.name for s in ul.open_run(out).shards()] == ["00", "01"]


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(pool, tmp_path, monkeypatch):
    """A loss that turns NaN at its first steps: the folder it had just written is removed,
    so no run without weights is left to read or to --overwrite."""
    from unlabeled.train.trainer import Trainer

    def nan_loss(self, resume=False):
        raise UnlabeledError("loss became nan at step 0; lower --lr, or check the settings")

    monkeypatch.setattr(Trainer, "fit", nan_loss)
    with pytest.raises(UnlabeledError, match="became nan"):
        ul.finetune(None, pool, tmp_path / "ft", epochs=0.1, precision="fp32")
    assert not (tmp_path / "ft").exists()
    with pytest.raises(UnlabeledError, match="unlabeled-weight must be a finite number"):
        ul.selftrain(None, pool, tmp_path / "st", shots=2, unlabeled_weight=float("nan"))


def test_a_run_is_not_written_inside_a_collection_and_shards_are_counted(pool, tmp_path):
    with pytest.raises(UnlabeledError, match="is inside the collection"):
        ul.finetune(None, pool, pool.path / "myrun", epochs=0.1)  # import --overwrite would delete it
    (tmp_path / "afile.txt").write_text("mine")
    with pytest.raises(UnlabeledError, match="is a file; a run is a folder"):
        ul.selftrain(None, pool, tmp_path / "afile.txt", shots=2, epochs=0.1)
    with pytest.raises(UnlabeledError, match="afile.txt is a file, so .* cannot be made inside it"):
        ul.finetune(None, pool, tmp_path / "afile.txt" / "run", epochs=0.1)  # was the bare "File exists"
    for shards in (0, -1, 1.5):
        with pytest.raises(UnlabeledError, match="--shards must be a whole number"):
            ul.finetune(None, pool, tmp_path / "x", epochs=0.1, shards=shards)
    assert not (pool.path / "myrun").exists() and not (tmp_path / "x").exists()


def test_a_failed_write_names_the_file_asked_for_not_its_temporary_twin(tmp_path):
    from unlabeled.train import checkpoint as ckpt

    target = tmp_path / "missing folder" / "out.json"
    with pytest.raises(OSError) as e:
        ckpt.atomic_write_json(target, {"a": 1})
    assert e.value.filename == str(target)
    (tmp_path / "a dir").mkdir()
    (tmp_path / "a dir" / "inside").touch()
    with pytest.raises(OSError) as e:  # the destination is a folder: the rename fails
        ckpt.atomic_write_json(tmp_path / "a dir", {"a": 1})
    assert e.value.filename == str(tmp_path / "a dir") and not list(tmp_path.glob(".*.tmp"))


def test_a_sharded_run_resumed_with_another_shard_count_is_refused(pool, tmp_path):
    train = pool.indices("train")[:300]
    out = tmp_path / "sisa"
    ul.finetune(None, pool, out, positions=train, epochs=0.1, shards=3, precision="fp32")
    (out / "config.json").unlink()  # interrupted before its top-level config
    with pytest.raises(UnlabeledError, match="started with more than 2 shards; resume it with its own --shards"):
        ul.finetune(None, pool, out, positions=train, epochs=0.1, shards=2, precision="fp32", resume=True)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["00", "01", "02"]  # nothing deleted


def test_pretrain_shards_fit_their_batch_to_the_smallest_shard(pool, tmp_path):
    """Shards are split sample by sample, so they differ in size: the default batch fits the
    smallest (256 samples in 2 shards of 122 and 134 failed with a batch of 128)."""
    from unlabeled.runs import shard_split

    pos = pool.indices("train")[:256]
    sizes = sorted(len(p) for p in shard_split(pos, 2, 0))
    assert sizes[0] < 128 < sizes[1]
    run = ul.pretrain(pool, tmp_path / "p", positions=pos, shards=2, epochs=0.2, precision="fp32")
    assert run.finished and run.config["train"]["batch_size"] <= sizes[0]


def test_a_folder_blocked_by_a_file_is_named_by_every_command(tmp_path):
    """Any command's folder that a file blocks (``--out notes.txt/sub``) failed with the
    system's bare "File exists" or "Not a directory"; the CLI names the file in the way."""
    from unlabeled.cli import _file_in_the_way

    (tmp_path / "notes.txt").write_text("mine")
    for e in (
        FileExistsError(17, "File exists", str(tmp_path / "notes.txt")),
        NotADirectoryError(20, "Not a directory", str(tmp_path / "notes.txt" / "sub" / "x")),
    ):
        assert (
            _file_in_the_way(e) == f"{tmp_path / 'notes.txt'} is a file, where a folder was to be made for {e.filename}"
        )
    assert _file_in_the_way(FileExistsError(17, "File exists", str(tmp_path))) is None  # a folder: the system's words
    assert _file_in_the_way(PermissionError(13, "Permission denied", str(tmp_path / "notes.txt"))) is None
