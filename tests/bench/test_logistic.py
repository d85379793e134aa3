"""The linear probe's logistic regression: scikit-learn's objective, several penalties at once,
warm starts, and the refit after the grid."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from unlabeled.bench.logistic import LogisticProbe, fit_logistic
from unlabeled.bench.probes import logistic_grid_scores, make_probe
from unlabeled.bench.protocol import _Labelled, evaluate


def _data(digits, classes):
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float64)
    keep = np.isin(digits.labels, classes)
    return StandardScaler().fit_transform(X[keep]), digits.labels[keep]


def _objective(model, X, y, C):
    coef = np.asarray(model.coef_, dtype=np.float64)
    p = np.clip(model.predict_proba(X)[np.arange(len(y)), np.searchsorted(model.classes_, y)], 1e-300, None)
    return -np.log(p).mean() + (coef**2).sum() / (2 * C * len(y))


@pytest.mark.parametrize("classes", [(0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (3, 8)])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_it_reaches_scikit_learns_optimum(digits, classes, C):
    X, y = _data(digits, classes)
    ref = LogisticRegression(C=C, tol=1e-8, max_iter=5000).fit(X, y)
    probe = LogisticProbe(C=C, tol=1e-5, max_iter=5000).fit(X, y)
    assert np.array_equal(probe.classes_, ref.classes_)
    # the same optimum: the objective (mean cross-entropy + ||W||² / 2Cn) within 1e-5 of theirs
    # (two classes: one logit, as scikit-learn fits them)
    assert _objective(probe, X, y, C) == pytest.approx(_objective(ref, X, y, C), abs=1e-5)
    np.testing.assert_allclose(probe.predict_proba(X), ref.predict_proba(X), atol=2e-3)
    assert (probe.predict(X) == ref.predict(X)).mean() > 0.995
    # it stops at the optimum: a tolerance below float32's reach ends where no step decreases
    # the objective, not after max_iter steps of zero (two classes at C 0.01 took all 5,000)
    assert probe.n_iter_[0] < 1000


def test_every_penalty_at_once_is_each_penalty_alone(digits):
    X, y = _data(digits, tuple(range(10)))
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    together = fit_logistic(Xt, yt, 10, [0.01, 0.1, 1.0], tol=1e-5, max_iter=3000)
    for i, C in enumerate([0.01, 0.1, 1.0]):
        alone = fit_logistic(Xt, yt, 10, [C], tol=1e-5, max_iter=3000)
        torch.testing.assert_close(together.weight[i], alone.weight[0], atol=5e-3 * (1 + C), rtol=0)
        assert abs(int(together.n_iter[i]) - int(alone.n_iter[0])) <= 2  # each stops on its own gradient
    assert together.n_iter[0] < together.n_iter[2]  # a weaker penalty takes longer


def test_a_warm_start_at_the_solution_stops_at_once(digits):
    X, y = _data(digits, tuple(range(10)))
    Xt, yt = torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)
    cold = fit_logistic(Xt, yt, 10, [0.1])
    start = torch.cat([cold.weight.reshape(1, -1), cold.bias], dim=1)
    warm = fit_logistic(Xt, yt, 10, [0.1], init=start)
    assert warm.n_iter[0] == 0 < cold.n_iter[0]
    torch.testing.assert_close(warm.weight, cold.weight)


def test_the_grid_scores_each_penalty_as_a_fit_of_its_own_would(digits):
    X, y = _data(digits, tuple(range(10)))
    fit, val = np.arange(0, 1200), np.arange(1200, len(y))
    data = _Labelled(X, y, "classification", "accuracy")
    scores = logistic_grid_scores(X[fit], y[fit], X[val], y[val], (0.001, 0.1, 10.0), data.scorer)
    for C, s in zip((0.001, 0.1, 10.0), scores, strict=True):
        alone = make_probe("linear", C=C).fit(X[fit], y[fit])
        assert s == pytest.approx((alone.predict(X[val]) == y[val]).mean(), abs=0.01)
    assert len({round(s, 4) for s in scores}) > 1  # the penalties were not all scored as one


def test_sparse_features_fall_back_to_scikit_learns_saga():
    rng = np.random.default_rng(0)
    X = sp.random(300, 2000, density=0.01, format="csr", random_state=0)
    y = (np.asarray(X[:, :1000].sum(1)).ravel() > np.asarray(X[:, 1000:].sum(1)).ravel()).astype(int)
    probe = make_probe("linear", C=100.0).fit(X, y + 3 * rng.integers(0, 1, len(y)))
    assert probe[-1].sklearn_.solver == "saga" and (probe.predict(X) == y).mean() > 0.9


def test_one_class_or_non_finite_features_are_errors_that_say_so():
    with pytest.raises(ValueError, match="at least 2 classes"):
        LogisticProbe().fit(np.ones((5, 3)), np.zeros(5))
    X = np.ones((4, 3))
    X[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        LogisticProbe().fit(X, np.array([0, 1, 0, 1]))


def test_the_linear_probe_in_the_protocol_is_as_accurate_as_scikit_learns(digits):
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32)
    y = digits.labels
    ours = evaluate(X[:1400], y[:1400], X[1400:], y[1400:], "linear", 1.0, seed=0)
    scale = StandardScaler().fit(X[:1400])
    ref = LogisticRegression(C=ours.param, tol=1e-3, max_iter=500).fit(scale.transform(X[:1400]), y[:1400])
    assert ours.value == pytest.approx(ref.score(scale.transform(X[1400:]), y[1400:]), abs=0.01)


def test_a_cells_later_seeds_and_its_refits_start_warm(digits, monkeypatch):
    from unlabeled.bench import logistic
    from unlabeled.bench.protocol import ProbeData, fit_and_score

    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32) / 16
    data = ProbeData(X[:1400], digits.labels[:1400], X[1400:], digits.labels[1400:])
    real, iters = logistic.fit_logistic, []

    def spy(*a, **kw):
        sol = real(*a, **kw)
        iters.append((kw.get("init") is not None, int(sol.n_iter.max())))
        return sol

    monkeypatch.setattr(logistic, "fit_logistic", spy)
    for seed in range(3):
        fit_and_score(data, "linear", 1.0, seed)
    cold, iters[:] = list(iters), []
    warm: dict = {}
    for seed in range(3):
        fit_and_score(data, "linear", 1.0, seed, None, None, warm)
    assert [w for w, _ in cold] == [False] * 6  # a grid and a refit per seed, each from zeros
    assert [w for w, _ in iters] == [False, True, True, True, True, True]  # only the first grid is cold
    assert sum(n for _, n in iters) < 0.7 * sum(n for _, n in cold)


def test_a_warm_grid_and_refit_reach_the_cold_ones_optimum(digits):
    from unlabeled.bench.probes import warm_key

    X, y = _data(digits, tuple(range(10)))
    first, second = np.arange(0, 800), np.arange(400, 1200)  # two seeds' overlapping fit splits
    val = np.arange(1200, len(y))
    scorer = _Labelled(X, y, "classification", "accuracy").scorer
    warm: dict = {}
    logistic_grid_scores(X[first], y[first], X[val], y[val], (0.01, 1.0), scorer, warm)
    start = {k: v.clone() for k, v in warm.items()}
    cold = logistic_grid_scores(X[second], y[second], X[val], y[val], (0.01, 1.0), scorer)
    hot = logistic_grid_scores(X[second], y[second], X[val], y[val], (0.01, 1.0), scorer, warm)
    assert hot == pytest.approx(cold, abs=0.01)
    assert not torch.equal(warm[warm_key(1.0, y)], start[warm_key(1.0, y)])  # replaced by the new fit's
    refit_cold = LogisticProbe(C=1.0).fit(X[second], y[second])
    refit_warm = LogisticProbe(C=1.0, init=warm[warm_key(1.0, y[second])]).fit(X[second], y[second])
    assert refit_warm.n_iter_[0] < refit_cold.n_iter_[0]
    assert _objective(refit_warm, X[second], y[second], 1.0) == pytest.approx(
        _objective(refit_cold, X[second], y[second], 1.0), abs=1e-3
    )


def test_a_start_of_another_shape_is_ignored(digits):
    from unlabeled.bench.logistic import fit_probes
    from unlabeled.bench.probes import warm_key

    X, y = _data(digits, tuple(range(10)))
    wrong = torch.ones(1, 7)  # not (1, 65 * 10)
    (cold,) = fit_probes(X, y, [0.1])
    (fitted,) = fit_probes(X, y, [0.1], init=wrong)
    torch.testing.assert_close(fitted.coef_, cold.coef_)
    assert warm_key(0.1, y) != warm_key(0.1, y[y != 9])  # a start is kept per set of classes
