import json

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.bench.scaling import fit_law, scaling


def test_fit_law_recovers_a_known_law():
    import numpy as np

    m, n = np.meshgrid([100.0, 300.0, 1000.0], [10.0, 30.0, 100.0])
    err = 0.05 + 20 / m + 2 / n
    fit = fit_law(m.ravel(), n.ravel(), err.ravel())
    assert fit["e_inf"] == pytest.approx(0.05) and fit["a"] == pytest.approx(20) and fit["b"] == pytest.approx(2)
    assert fit["r2"] == pytest.approx(1)


@pytest.mark.slow
def test_scaling_study_end_to_end_and_resumes(gunpoint, tmp_path):
    # lr: an option of pretrain's, with which every run was retrained on every call
    kw = dict(pool_sizes=[0.5, 1.0], fractions=[0.2, 1.0], seeds=1, method="mae", epochs=1, batch_size=8, lr=1e-3)
    r = scaling(gunpoint, gunpoint, tmp_path / "s", **kw)
    assert [(x["m"], x["n"]) for x in r.rows] == [(25, 10), (25, 50), (50, 10), (50, 50)]
    assert all(0 <= x["error"] <= 1 for x in r.rows) and set(r.fit) == {"e_inf", "a", "b", "r2"}
    doc = json.loads(r.json_path.read_text())
    assert doc["rows"] == r.rows and "id='scaling'" in r.report_path.read_text()
    # the pools are nested random subsets of the train split and never hold a test sample
    small, big = (ul.open_collection(tmp_path / "s" / "pools" / m) for m in ("m25", "m50"))
    assert set(small.ids) < set(big.ids) and (big.splits == "train").all()
    weights = [p / "model.safetensors" for p in r.runs]
    stamps = [w.stat().st_mtime_ns for w in weights]
    again = scaling(gunpoint, gunpoint, tmp_path / "s", **kw)  # finished runs are reused, not retrained
    assert [w.stat().st_mtime_ns for w in weights] == stamps and again.rows == r.rows
    with pytest.raises(ul.UnlabeledError, match="one batch"):
        scaling(
            gunpoint, gunpoint, tmp_path / "t", pool_sizes=[0.1, 1.0], fractions=[0.5, 1.0], epochs=1, batch_size=64
        )
    with pytest.raises(ul.UnlabeledError, match="--pool-sizes needs at least two values"):
        scaling(gunpoint, gunpoint, tmp_path / "t", pool_sizes=[1.0], fractions=[0.5, 1.0], epochs=1, batch_size=8)
    with pytest.raises(ul.UnlabeledError, match="--fractions needs at least two values"):
        scaling(gunpoint, gunpoint, tmp_path / "t", pool_sizes=[0.5, 1.0], fractions=[1.0], epochs=1, batch_size=8)
    other = scaling(gunpoint, gunpoint, tmp_path / "s", **{**kw, "epochs": 2})  # other settings: trained again
    assert [w.stat().st_mtime_ns for w in weights] != stamps and other.settings["epochs"] == 2
    with pytest.raises(ul.UnlabeledError, match="budget"):
        scaling(gunpoint, gunpoint, tmp_path / "t", pool_sizes=[1.0], fractions=[1.0], batch_size=8)


@pytest.mark.parametrize(
    ("where", "kwargs", "message"),
    [
        ("inside", {}, "lies inside the collection"),
        ("out", {"probe": "bogus"}, "unknown probe 'bogus'"),
        ("out", {"method": "bogus"}, "unknown method 'bogus'"),
        ("out", {"bogus": 3}, "passes no option bogus to pretrain"),
        ("out", {"method_options": {"nope": 1}}, "nope"),
        ("out", {"pool_sizes": "0.5,1"}, "pool_sizes must be a list of numbers"),
        ("out", {"epochs": -1}, "--epochs must be a positive number, got -1"),  # not the subset's -9.98
        ("out", {"seeds": 0}, "--seeds must be a whole number, 1 or more"),  # after a pretraining
        ("out", {"batch_size": 0}, "--batch-size must be a whole number, 2 or more"),
        ("out", {"fractions": (0.1, 0.5, 0.5)}, "--fractions lists a value more than once"),  # after a pool trained
    ],
)
def test_scaling_refuses_bad_arguments_before_writing_anything(gunpoint, tmp_path, where, kwargs, message):
    # each was caught after pools were derived (or a run was trained), or ended in a TypeError
    out = gunpoint.path / "study" if where == "inside" else tmp_path / "study"
    before = sorted(p.name for p in gunpoint.path.iterdir())
    options = {"pool_sizes": (0.5, 1.0), "fractions": (0.1, 1.0), "epochs": 1, **kwargs}
    with pytest.raises(ul.UnlabeledError, match=message):
        scaling(gunpoint, gunpoint, out, **options)
    assert not out.exists() and sorted(p.name for p in gunpoint.path.iterdir()) == before


def test_every_pool_size_gets_the_steps_of_the_whole_pool():
    """Scaling the epochs by N / m alone: a subset of 20 in batches of 16 trained 10 steps where
    the pool of 200 trained 12 (the trainer takes whole batches)."""
    from unlabeled.bench.scaling import subset_epochs

    for whole, m, batch, epochs in [(200, 20, 16, 1.0), (200, 200, 16, 1.0), (1000, 130, 32, 2.5), (57, 19, 8, 0.3)]:
        steps = max(1, round(subset_epochs(epochs, whole, m, batch) * (m // batch)))  # as the trainer counts
        assert steps == max(1, round(epochs * (whole // batch))), (whole, m, batch, epochs)


def test_a_task_that_cannot_be_probed_is_refused_before_any_pretraining(gunpoint, fmnist_small, tmp_path):
    with pytest.raises(ul.UnlabeledError, match="holds series samples; task .* has image samples"):
        scaling(gunpoint, fmnist_small, tmp_path / "a", pool_sizes=(0.5, 1.0), fractions=(0.1, 1.0), epochs=1)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(40, 1, 150)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.zeros(40, dtype=np.int64))
    one = ul.import_source(tmp_path / "x.npy", tmp_path / "one", labels=tmp_path / "y.npy", modality="series")
    with pytest.raises(ul.UnlabeledError, match="one class"):
        scaling(gunpoint, one.collection, tmp_path / "b", pool_sizes=(0.5, 1.0), fractions=(0.1, 1.0), epochs=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_pool_never_holds_the_tasks_test_samples(tmp_path):
    """A pool without a split column (the task's own collection, whose test split the bench
    carves, or the same images imported again in another order) leaves the task's test
    samples out: by position on the same collection, by content on another."""
    from sklearn.datasets import load_digits

    from unlabeled.bench.scaling import pool_without_test
    from unlabeled.bench.tasks import make_task
    from unlabeled.data.collection import CollectionWriter

    d = load_digits()
    x, y = d.images[:200, None].astype(np.float32), d.target[:200]

    def write(name, order):
        w = CollectionWriter(tmp_path / name, "image", (1, 8, 8), "float32", [str(i) for i in range(10)])
        w.add(x[order], [f"s{i}" for i in order], y[order], None)
        return w.close()

    col = write("a", np.arange(200))
    task = make_task(col)
    assert len(col.indices(exclude="test")) == 200  # no split column: every sample is a candidate
    kept = pool_without_test(col, task)
    assert len(kept) == 200 - len(task.test) and not np.isin(task.test, kept).any()
    shuffled = write("b", np.random.default_rng(0).permutation(200))
    kept = pool_without_test(shuffled, task)
    assert sorted(shuffled.ids[i] for i in kept) == sorted(col.ids[i] for i in task.train)


def test_the_law_is_fitted_on_finite_rows_and_is_nan_without_three():
    """On no rows nnls returned uninitialised numbers with R² 1, written to scaling.json."""
    from unlabeled.bench.scaling import fit_law

    empty = fit_law(np.array([]), np.array([]), np.array([]))
    assert all(np.isnan(v) for v in empty.values())
    m, n = np.array([10.0, 10.0, 100.0, 100.0, 100.0]), np.array([5.0, 50.0, 5.0, 50.0, 50.0])
    err = 0.1 + 2 / m + 0.5 / n
    fit = fit_law(m, n, np.append(err[:4], np.nan))  # the last row a NaN score: left out
    assert fit["e_inf"] == pytest.approx(0.1, abs=1e-6) and fit["r2"] == pytest.approx(1.0)
