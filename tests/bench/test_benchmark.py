import json

import pytest

import unlabeled as ul


@pytest.fixture(scope="module")
def result(fmnist_small, tmp_path_factory):
    run = ul.pretrain(fmnist_small, tmp_path_factory.mktemp("runs") / "simclr", epochs=1, batch_size=64)
    return ul.bench(run, fmnist_small, fractions=[0.05, 1.0], seeds=2)


def test_rows_have_every_model_probe_and_fraction(result):
    rows = json.loads(result.json_path.read_text())
    assert rows == result.rows
    keys = {(r["model"], r["probe"], r["fraction"]) for r in rows}
    models, probes = ("raw", "simclr", "random-init"), ("linear", "knn", "nb")
    assert keys == {(m, p, f) for m in models for p in probes for f in (0.05, 1.0)}
    for r in rows:
        assert {"task", "model", "probe", "fraction", "metric", "mean", "std"} <= set(r)
        assert r["metric"] == "accuracy" and 0.1 < r["mean"] <= 1 and len(r["scores"]) == 2
    assert result.score("raw", "linear", 1.0)["n_labels"] == 2000
    assert abs(result.score("raw", "linear", 0.05)["n_labels"] - 100) <= 5  # rounded per class
    # more labels help
    assert result.score("raw", "linear", 1.0)["mean"] > result.score("raw", "linear", 0.05)["mean"]


def test_report_is_self_contained(result):
    page = result.report_path.read_text()
    assert page.count("data:image/png;base64,") >= 2 and "<table id='results'>" in page
    assert "http://" not in page and "https://" not in page
    assert "simclr" in page and "random-init" in page


def test_table_and_errors(result, fmnist_small, digits):
    assert "1% labels" not in result.table() and "5% labels" in result.table()
    with pytest.raises(ul.UnlabeledError, match="shape"):
        ul.bench(result.settings["runs"][0], digits)
    with pytest.raises(ul.UnlabeledError, match="probe"):
        ul.bench(result.settings["runs"][0], fmnist_small, probes=["svm"])
