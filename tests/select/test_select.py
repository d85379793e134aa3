"""Selection: derived collections, exact duplicates at import, and every method on real
scikit-learn digits (raw pixels as embeddings, or a pretrained encoder's)."""

import json

import numpy as np
import pytest
from PIL import Image

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.data.collection import derive_collection
from unlabeled.select import algorithms as select_algorithms
from unlabeled.select import select
from unlabeled.select.index import EmbeddingIndex
from unlabeled.select.methods import kcenter, semdedup, sinkhorn_potentials
from unlabeled.select.methods.simcore_method import _rounds


@pytest.fixture(scope="module")
def pixels(digits):
    return digits.get(np.arange(len(digits))).reshape(len(digits), -1).astype(np.float32)


def test_derived_collection_reads_the_pool_in_place(digits, tmp_path):
    pos = np.array([5, 1, 700])
    sub = derive_collection(digits, pos, tmp_path / "sub", {"name": "sub"})
    assert not list((tmp_path / "sub").glob("*.npy"))  # no copy of the arrays
    np.testing.assert_array_equal(sub.get([0, 1, 2]), digits.get([1, 5, 700]))
    assert sub.labels.tolist() == digits.labels[[1, 5, 700]].tolist() and sub.ids[0] == digits.ids[1]
    assert sub.fingerprint() != digits.fingerprint()


def test_exact_duplicates_are_reported_at_import(tmp_path, digits):
    img = digits.get([3])[0, 0]
    for name in ("a.png", "b.png"):
        Image.fromarray(img).save(tmp_path / name)
    Image.fromarray(digits.get([4])[0, 0]).save(tmp_path / "c.png")
    report = ul.import_source(tmp_path, tmp_path.parent / "dup-col")
    assert report.duplicates == [("b.png", "a.png")] and "exact duplicates: 1" in report.summary()


def test_random_is_seeded_and_never_takes_test_samples(fmnist_small, tmp_path):
    a = select(fmnist_small, method="random", budget=100, out=tmp_path / "a", seed=1)
    b = select(fmnist_small, method="random", budget=0.05, out=tmp_path / "b", seed=1)
    assert len(a) == 100 and len(b) == 100 and (a.ids == b.ids).all()
    assert set(a.splits) == {"train"}
    rec = json.loads((tmp_path / "a" / "selection.json").read_text())
    assert rec["method"] == "random" and rec["selected"] == 100 and rec["pool_size"] == 2000


def test_kcenter_covers_better_than_random(pixels):
    chosen = kcenter(pixels, 30, seed=0)
    assert len(set(chosen.tolist())) == 30

    def radius(idx):
        x = pixels / np.linalg.norm(pixels, axis=1, keepdims=True)
        return float((1 - x @ x[idx].T).min(1).max())

    rand = [radius(np.random.default_rng(s).choice(len(pixels), 30, replace=False)) for s in range(5)]
    assert radius(chosen) < min(rand)


def test_kcenter_pruning_is_exactly_the_greedy_traversal(pixels, monkeypatch):
    # the plain traversal: one full distance pass per pick
    x = pixels / np.linalg.norm(pixels, axis=1, keepdims=True)
    first = int(np.random.default_rng(3).integers(len(x)))
    chosen, near = [first], 1 - x @ x[first]
    for _ in range(199):
        near[chosen[-1]] = -1
        chosen.append(int(near.argmax()))
        near = np.minimum(near, 1 - x @ x[chosen[-1]])
    assert kcenter(pixels, 200, seed=3).tolist() == sorted(chosen)
    # the chunked path, for pools too large for memory, gives the same traversal
    monkeypatch.setattr(select_algorithms, "CHUNK", 500)
    monkeypatch.setattr(select_algorithms, "IN_MEMORY_BYTES", 0)
    assert kcenter(pixels, 200, seed=3).tolist() == sorted(chosen)


def test_simcore_and_target_shift_take_what_resembles_the_target(digits, pixels, tmp_path):
    target = pixels[np.isin(digits.labels, [0, 1])][:40]
    picks = {}
    for method in ("simcore", "target-shift", "random"):
        col = select(
            digits, method=method, budget=150, out=tmp_path / method, pool_vectors=pixels, target_vectors=target
        )
        picks[method] = float(np.isin(col.labels, [0, 1]).mean())
    assert picks["random"] < 0.35  # two classes of ten
    assert picks["simcore"] > 0.8 and picks["target-shift"] > 0.6


def test_semdedup_finds_planted_near_duplicates(pixels):
    rng = np.random.default_rng(0)
    base = pixels[:600]
    planted = rng.choice(600, 60, replace=False)
    copies = base[planted] + rng.normal(0, 0.2, (60, base.shape[1])).astype(np.float32)
    pool = np.concatenate([base, copies])
    keep, info = semdedup(pool, threshold=0.995, clusters=10, seed=0)
    removed = set(range(len(pool))) - set(keep.tolist())
    truth = set(range(600, 660)) | set(planted.tolist())  # either member of a pair may go
    pairs_hit = sum(1 for i, p in enumerate(planted) if (600 + i) in removed or p in removed)
    assert pairs_hit / 60 >= 0.9  # recall over planted pairs
    assert len(removed & truth) / max(1, len(removed)) >= 0.9  # precision
    assert info["removed"] == len(removed)


def test_sinkhorn_potentials_prefer_points_near_the_target():
    x = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    y = np.array([[1.0, 0.05], [0.98, -0.05]], np.float32)
    f = sinkhorn_potentials(x, y, eps=0.05, iters=100)
    assert f.argmin() == 0 and f.argmax() == 1


def test_index_searches_by_cosine(pixels):
    index = EmbeddingIndex(pixels, ivf_above=1000)  # 1797 > 1000: the IVF index
    sims, idx = index.search(pixels[:5], 3)
    assert "IVF" in index.kind and (idx[:, 0] == np.arange(5)).all() and np.allclose(sims[:, 0], 1, atol=1e-5)
    with pytest.raises(UnlabeledError, match="dimension"):
        index.search(np.ones((1, 3), np.float32), 1)
    # a few queries (SimCore's centroids) do not pay for training inverted lists
    assert EmbeddingIndex(pixels, ivf_above=1000, queries=5).kind == "Flat (exact)"


def test_clear_errors(digits, pixels, tmp_path):
    with pytest.raises(UnlabeledError, match="larger than the 1438 samples it can choose from"):
        select(digits, method="random", budget=5000, out=tmp_path / "x")
    for budget, match in ((float("nan"), "a count, or a fraction"), (float("inf"), "a count"), (1.5, "whole number")):
        with pytest.raises(UnlabeledError, match=match):
            select(digits, method="random", budget=budget, out=tmp_path / "x")
    with pytest.raises(UnlabeledError, match="rounds to none"):
        select(digits, method="random", budget=0.0001, out=tmp_path / "x")
    for kwargs, match in (
        ({"method": "simcore", "budget": 10, "centroids": 0}, "--centroids must be a whole number"),
        ({"method": "simcore", "budget": 10, "stop_similarity": float("nan")}, "cosine similarity in"),
        ({"method": "dedup", "budget": 10}, "dedup takes no --budget"),
        ({"method": "random", "budget": 10, "target": digits}, "random takes no --target"),
        # each sample its own cluster: dedup removed nothing and said nothing
        ({"method": "dedup", "centroids": 5000}, "--centroids 5000 is more than the pool's 1438 samples"),
        # SimCore clusters the target: checked against the target (k-means quietly made 20 of 30)
        ({"method": "simcore", "budget": 10, "centroids": 30}, "--centroids 30 is more than the target's 20 samples"),
        # the test split was then the pool's, silently
        ({"method": "random", "budget": 10, "exclude_split": "bogus"}, "no split 'bogus' for --exclude-split"),
        # settings a method does not read were accepted and ignored
        ({"method": "kcenter", "budget": 10, "stop_similarity": 0.5}, "kcenter takes no --stop-similarity"),
        ({"method": "random", "budget": 10, "centroids": 3}, "random takes no --centroids"),
        ({"method": "simcore", "budget": 10, "threshold": 0.5}, "simcore takes no --threshold"),
        # every centroid stopped at once: "a derived collection needs at least one sample"
        ({"method": "simcore", "budget": 10, "stop_similarity": 1.0}, "kept no sample: no pool sample is within"),
    ):
        with pytest.raises(UnlabeledError, match=match):
            select(digits, out=tmp_path / "x", pool_vectors=pixels, target_vectors=pixels[:20], **kwargs)
    big_target = select(  # more centroids than the pool's 1438 samples, fewer than the target's
        digits,
        method="simcore",
        budget=10,
        centroids=1500,
        out=tmp_path / "t",
        pool_vectors=pixels,
        target_vectors=np.tile(pixels, (2, 1)) + 0.01,
    )
    assert len(big_target) == 10
    with pytest.raises(UnlabeledError, match="needs --target"):
        select(digits, method="simcore", budget=10, out=tmp_path / "x", pool_vectors=pixels)
    with pytest.raises(UnlabeledError, match="empty"):
        select(
            digits,
            method="simcore",
            budget=10,
            out=tmp_path / "x",
            pool_vectors=pixels,
            target_vectors=np.zeros((0, 64), np.float32),
        )
    with pytest.raises(UnlabeledError, match="dimension"):
        select(
            digits,
            method="simcore",
            budget=10,
            out=tmp_path / "x",
            pool_vectors=pixels,
            target_vectors=np.ones((3, 8), np.float32),
        )
    with pytest.raises(UnlabeledError, match="--encoder"):
        select(digits, method="kcenter", budget=10, out=tmp_path / "x")
    with pytest.raises(UnlabeledError, match="choose from"):
        select(digits, method="nope", budget=10, out=tmp_path / "x")


def test_select_with_an_encoder_then_pretrain_on_the_selection(digits, tmp_path):
    import subprocess
    import sys

    from unlabeled.data.collection import writer_tag

    run = ul.pretrain(digits, tmp_path / "enc", epochs=1, batch_size=64)
    # what a select killed while embedding left (SIGKILL runs no cleanup): gone with the next
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run.path / "selection-embeddings").mkdir()
    dead = run.path / "selection-embeddings" / f"x-y.{writer_tag().rpartition('-')[0]}-{gone.stdout.strip()}.tmp.npy"
    dead.write_bytes(b"half")
    live = run.path / "selection-embeddings" / f"x-y.{writer_tag()}.tmp.npy"  # this process: alive
    live.write_bytes(b"half")
    zeros = derive_collection(digits, np.flatnonzero(digits.labels == 0), tmp_path / "zeros", {"name": "zeros"})
    sel = select(digits, method="simcore", budget=200, encoder=run, target=zeros, out=tmp_path / "sel")
    assert len(sel) == 200 and list((run.path / "selection-embeddings").glob("*.npy"))
    assert not dead.exists() and live.exists()
    # the pool's embeddings given, the target's by the encoder (stopped at a bare AssertionError)
    given = run.encode(digits, np.arange(len(digits)))
    picked = select(
        digits, method="simcore", budget=np.int64(20), encoder=run, target=zeros, pool_vectors=given, out=tmp_path / "g"
    )
    assert len(picked) == 20  # numpy's integer taken as a count (was refused as no count)
    with pytest.raises(UnlabeledError, match="--target collection is embedded by --encoder RUN"):
        select(digits, method="simcore", budget=20, target=zeros, pool_vectors=given, out=tmp_path / "g2")
    dedup = select(digits, method="dedup", threshold=0.999, encoder=run, out=tmp_path / "dd")
    assert 0 < len(dedup) <= len(digits)
    again = ul.pretrain(sel, tmp_path / "on-selection", epochs=1, batch_size=64)
    assert again.step == 3


def test_semdedup_keeps_one_of_a_pools_exact_copies(pixels):
    """A pool of one sample's copies centres to zero vectors, where cosine sees nothing:
    exact copies are removed by their bytes, whatever else the pool holds."""
    copies = np.repeat(pixels[:1], 300, axis=0)
    keep, info = semdedup(copies, threshold=0.95, clusters=None, seed=0)
    assert keep.tolist() == [0] and info["exact"] == 299
    mixed = np.concatenate([pixels[:50], pixels[:50], pixels[7:8]])
    keep, info = semdedup(mixed, threshold=0.999, clusters=5, seed=0)
    assert info["exact"] == 51 and set(keep.tolist()) <= set(range(50)) and len(keep) >= 45


def test_given_vectors_must_be_one_finite_row_per_sample(digits, tmp_path):
    pixels = digits.get(np.arange(len(digits))).reshape(len(digits), -1).astype(np.float32)
    with pytest.raises(UnlabeledError, match=f"pool_vectors must be a 2-D array of {len(digits)} rows"):
        select(digits, method="kcenter", budget=10, out=tmp_path / "a", pool_vectors=pixels[:5])  # an IndexError
    nan = pixels.copy()
    nan[3, 0] = np.nan
    with pytest.raises(UnlabeledError, match="pool_vectors holds NaN"):  # k-center chose anyway
        select(digits, method="kcenter", budget=10, out=tmp_path / "b", pool_vectors=nan)
    assert not list(tmp_path.iterdir())


def test_each_simcore_centroid_takes_its_nearest_sample_not_yet_taken_every_round():
    """A centroid whose next neighbour another had taken took nothing that round, so the budget
    went to the centroids met first and a target cluster could go without a sample."""
    sims = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    idx = np.array([[0, 1, 2], [0, 2, 1]])  # both nearest sample 0; then 1 for the first, 2 for the second
    assert _rounds((sims, idx), 2, None, False) == ([0, 2], False)  # the second centroid takes its next, 2
    assert _rounds((sims, idx), 3, 0.85, False) == ([0], True)  # the next ones below the stop: no more
    assert _rounds((sims[:, :1], idx[:, :1]), 2, None, True) is None  # out of neighbours: search further


def test_semdedup_walks_a_cluster_in_blocks_and_samples_its_centroids_at_random(pixels, monkeypatch):
    """The whole m x m similarity matrix of a cluster took 90 GB at 100,000 members; walked a
    block of rows at a time it is the same dedup. Beyond memory, k-means was fitted on the
    first rows (one source of a pool in import order): now on a seeded random sample."""
    from unlabeled.select.methods import dedup_method

    rng = np.random.default_rng(1)
    pool = np.concatenate([pixels[:300], pixels[:100] + rng.normal(0, 0.05, (100, pixels.shape[1])).astype(np.float32)])
    whole, info = semdedup(pool, threshold=0.99, clusters=1, seed=0)
    monkeypatch.setattr(dedup_method, "BLOCK_VALUES", 7 * len(pool))  # blocks of 7 rows
    blocked, again = semdedup(pool, threshold=0.99, clusters=1, seed=0)
    assert np.array_equal(whole, blocked) and info == again and info["removed"] >= 90
    seen = []
    real = dedup_method.kmeans
    monkeypatch.setattr(dedup_method, "kmeans", lambda x, k, seed: seen.append(x.copy()) or real(x, k, seed))
    monkeypatch.setattr(select_algorithms, "IN_MEMORY_BYTES", 0)
    ordered = np.concatenate([np.full((200, 8), float(g)) + rng.normal(0, 0.1, (200, 8)) for g in range(10)])
    semdedup(ordered.astype(np.float32), threshold=0.99, clusters=2, seed=0)
    assert len(seen[0]) == 128  # 64 rows a centroid
    groups = {int(round(v)) for v in ordered[: len(ordered)].mean(1)}
    firsts = ordered[:128].mean(1)
    assert groups == set(range(10)) and np.ptp(firsts) < 1  # the first 128 rows: one group alone
    assert np.ptp(seen[0][:, 0]) > 0.5  # the sample spans groups (centred and normalised, still apart)


def test_a_fraction_of_the_pool_rounds_halves_up():
    from unlabeled.select.api import _budget

    assert [_budget(0.5, n, "random") for n in (3, 5, 7, 9)] == [2, 3, 4, 5]


def test_simcore_searches_further_where_an_inverted_list_index_found_fewer_than_k():
    """faiss's IVF gives -1 where its probed lists ran out: the centroid stopped taking samples
    (the budget unmet) though more of the pool lay further out."""
    sims = np.array([[0.9, -np.inf], [0.8, 0.7]], dtype=np.float32)
    idx = np.array([[0, -1], [0, 1]])
    assert _rounds((sims, idx), 3, None, more=True) is None  # search again with a larger k
    order, early = _rounds((sims, idx), 3, None, more=False)  # the whole pool searched: stop
    assert order == [0, 1] and early
