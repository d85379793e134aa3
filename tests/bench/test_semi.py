"""The ``semi`` probe: FixMatch on a label draw and the rest of the train split, in the bench
protocol, beside the same architecture trained from scratch with and without the unlabelled
samples."""

from __future__ import annotations

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.bench import semi
from unlabeled.bench.protocol import evaluate


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, gunpoint):
    return ul.pretrain(gunpoint, tmp_path_factory.mktemp("semi") / "mae", method="mae", epochs=1, batch_size=16)


def test_the_test_split_never_reaches_the_probe_and_validation_stays_out_of_the_pool(monkeypatch, gunpoint, pretrained):
    monkeypatch.setattr(semi, "MAX_STEPS", 4)
    seen = []
    real = semi.SemiProbe.fit

    def fit(self, X, y, X_val=None, y_val=None, X_unlabelled=None):
        seen.append((X, X_val, X_unlabelled))
        return real(self, X, y, X_val, y_val, X_unlabelled)

    monkeypatch.setattr(semi.SemiProbe, "fit", fit)
    train, test = gunpoint.indices("train"), gunpoint.indices("test")
    X = gunpoint.get(np.concatenate([train, test])).astype(np.float32)
    n = len(train)
    ctx = {"run": str(pretrained.path), "trained": True, "device": "cpu"}
    score = evaluate(X[:n], gunpoint.labels[train], X[n:], gunpoint.labels[test], "semi", 1.0, 0, context=ctx)
    assert 0 <= score.value <= 1 and set(score.param) == {"max_steps"}
    (X_fit, X_val, pool_choosing), (X_all, none, pool_refit) = seen
    rows = {row.tobytes() for row in X[n:]}
    assert not rows & {row.tobytes() for row in np.concatenate([pool_choosing, pool_refit])}  # no test sample
    assert len(pool_refit) == n and len(pool_choosing) == n - len(X_val)
    assert not {row.tobytes() for row in X_val} & {row.tobytes() for row in pool_choosing}
    assert none is None and len(X_all) == n


@pytest.mark.slow
def test_a_semi_row_beside_finetune_and_fixmatch_from_scratch(monkeypatch, gunpoint, pretrained, tmp_path):
    monkeypatch.setattr(semi, "MAX_STEPS", 100)
    r = ul.bench(
        pretrained,
        gunpoint,
        fractions=[0.2],
        seeds=1,
        probes=["semi"],
        baselines=["supervised"],
        out=tmp_path / "out",
    )
    rows = {(x["model"], x["probe"]): x for x in r.rows}
    assert set(rows) == {("mae", "semi"), ("supervised", "finetune"), ("supervised", "semi")}
    for (_, probe), x in rows.items():
        if probe == "semi":
            (params,) = x["params"]
            assert params["max_steps"] in (50, 100)  # scored on validation every 50 steps
        assert x["n_labels"] == 10 and 0 <= x["mean"] <= 1 and len(x["scores"]) == 1
    assert "semi" in (tmp_path / "out" / "report.html").read_text()


def test_regression_and_bad_settings_are_refused(gunpoint, pretrained):
    X = gunpoint.get(gunpoint.indices("train")).astype(np.float32)
    with pytest.raises(ul.UnlabeledError, match="for classification"):
        semi.SemiProbe(str(pretrained.path), task="regression").fit(X, np.arange(len(X), dtype=float))
    with pytest.raises(ul.UnlabeledError, match="ratio must be at least 1"):
        semi.SemiProbe(str(pretrained.path), ratio=0).fit(X, gunpoint.labels[gunpoint.indices("train")])
    with pytest.raises(ValueError, match="no regression form"):
        from unlabeled.bench.probes import probe_spec

        probe_spec("semi", "regression")
