import numpy as np
import pytest

from unlabeled.bench.protocol import Setting, evaluate


def test_evaluate_is_seeded_and_uses_the_fraction(digits):
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32)
    y = digits.labels
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    a = evaluate(Xtr, ytr, Xte, yte, "linear", 0.1, seed=0)
    b = evaluate(Xtr, ytr, Xte, yte, "linear", 0.1, seed=0)
    assert a == b and a.n_labels == 140 and a.param in (0.01, 0.1, 1.0)
    full = evaluate(Xtr, ytr, Xte, yte, "linear", 1.0, seed=0)
    assert full.n_labels == 1400 and full.value > 0.85
    assert full.value > evaluate(Xtr, ytr, Xte, yte, "linear", 0.01, seed=0).value


class _Spy:
    """A probe that records which arrays it was fitted on and asked to predict."""

    log: list = []

    def __init__(self, C=1.0):
        from sklearn.linear_model import LogisticRegression

        self.model = LogisticRegression(C=C, max_iter=200)

    def fit(self, X, y):
        _Spy.log.append(("fit", X.copy()))
        self.model.fit(X, y)
        self.classes_ = self.model.classes_
        return self

    def predict(self, X):
        _Spy.log.append(("predict", X.copy()))
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)


def test_the_test_split_is_used_once_and_never_for_a_choice(digits, monkeypatch):
    from unlabeled.bench import probes

    monkeypatch.setitem(probes.PROBES, "spy", probes.ProbeSpec("spy", _Spy, "C", (0.001, 0.1, 10.0)))
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32) / 16
    y = digits.labels
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    _Spy.log = []
    a = evaluate(Xtr, ytr, Xte, yte, "spy", 0.2, seed=0)
    test_rows = {r.tobytes() for r in Xte}
    touched = [(kind, sum(r.tobytes() in test_rows for r in arr)) for kind, arr in _Spy.log]
    assert [t for t in touched if t[1]] == [("predict", len(Xte))]  # once, at the very end
    assert _Spy.log[-1][0] == "predict" and len(_Spy.log) == 3 * 2 + 2  # 3 grid fits + predicts, refit, test
    # scrambled test labels and test inputs change the score but not a single choice
    rng = np.random.default_rng(0)
    b = evaluate(Xtr, ytr, rng.permutation(Xte), rng.permutation(yte), "spy", 0.2, seed=0)
    assert a.param == b.param and a.n_labels == b.n_labels and a.value != b.value


def test_k_shot_and_metric_choice(digits):
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32)
    y = digits.labels
    s = evaluate(X[:1400], y[:1400], X[1400:], y[1400:], "knn", Setting(shots=5), seed=1, metric="macro_f1")
    assert s.n_labels == 50 and s.value == s.metrics["macro_f1"] and s.param in (5, 20, 50)
    assert s.value > 0.7  # five digits of each class already separate most of the test set
    assert Setting(shots=5).label == "5-shot" and Setting(fraction=0.01).label == "1%"
    # a regression metric for a classification task: said before the fits, not a KeyError after
    with pytest.raises(ValueError, match="metric 'mae' is not a classification metric"):
        evaluate(X[:1400], y[:1400], X[1400:], y[1400:], "knn", 0.5, seed=0, metric="mae")


def test_ridge_chooses_by_leave_one_out_and_by_the_grouped_split_with_groups(digits, monkeypatch):
    from sklearn.linear_model import RidgeClassifierCV

    from unlabeled.bench.probes import RIDGE_ALPHAS

    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32)
    y = digits.labels
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    loo = evaluate(Xtr, ytr, Xte, yte, "ridge", 0.1, seed=0)
    assert np.isclose(loo.param, RIDGE_ALPHAS).any() and loo.value > 0.8 and 0.9 < loo.metrics["auroc"] <= 1
    # with groups no leave-one-out (it would let a group's samples choose for each other):
    # the penalty is chosen on the protocol's group-aware split, from the same grid
    calls = []
    real_fit = RidgeClassifierCV.fit
    monkeypatch.setattr(RidgeClassifierCV, "fit", lambda self, *a, **k: calls.append(1) or real_fit(self, *a, **k))
    grouped = evaluate(Xtr, ytr, Xte, yte, "ridge", 0.1, seed=0, groups=np.arange(1400) // 7)
    assert not calls and np.isclose(grouped.param, RIDGE_ALPHAS).any() and grouped.value > 0.7
    reg = evaluate(Xtr, Xtr[:, 20], Xte, Xte[:, 20], "ridge", 0.5, seed=0, kind="regression")
    assert np.isclose(reg.param, RIDGE_ALPHAS).any() and reg.metrics["r2"] > 0.5


def test_seeds_that_draw_the_same_subset_and_choice_refit_and_score_the_test_split_once(digits, monkeypatch):
    from unlabeled.bench import probes
    from unlabeled.bench.protocol import ProbeData, fit_and_score

    monkeypatch.setitem(probes.PROBES, "spy", probes.ProbeSpec("spy", _Spy, "C", (0.1,)))  # one choice
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32) / 16
    data = ProbeData(X[:1400], digits.labels[:1400], X[1400:], digits.labels[1400:])
    for fraction, refits in ((1.0, 1), (0.1, 3)):  # every seed draws all the labels / its own tenth
        _Spy.log, memo = [], {}
        shared = [fit_and_score(data, "spy", fraction, seed, None, memo) for seed in range(3)]
        assert [kind for kind, _ in _Spy.log] == ["fit", "predict"] * refits
        alone = [fit_and_score(data, "spy", fraction, seed) for seed in range(3)]  # no memo: each refits
        assert shared == alone


def test_a_cell_whose_seeds_all_draw_every_label_is_fitted_once_and_a_tenth_per_seed(digits, monkeypatch):
    from unlabeled.bench import probes
    from unlabeled.bench.jobs import _cell_job
    from unlabeled.bench.protocol import ProbeData

    monkeypatch.setitem(probes.PROBES, "spy", probes.ProbeSpec("spy", _Spy, "C", (0.1, 1.0)))  # a real choice
    X = digits.get(digits.indices()).reshape(len(digits), -1).astype(np.float32) / 16
    data = ProbeData(X[:1400], digits.labels[:1400], X[1400:], digits.labels[1400:])
    assert Setting(fraction=1.0).draws_alike(data.y_train, data.kind, range(3))
    assert not Setting(fraction=0.1).draws_alike(data.y_train, data.kind, range(3))
    assert Setting(shots=10_000).draws_alike(data.y_train, data.kind, range(3))  # every sample of every class
    for fraction, fits in ((1.0, 2 + 1), (0.1, 3 * (2 + 1))):  # a fit per C on a carve-out, then a refit
        _Spy.log = []
        setting = Setting(fraction=fraction)
        scores = _cell_job(data, "spy", setting, (0, 1, 2), setting.draws_alike(data.y_train, data.kind, (0, 1, 2)))
        assert sum(kind == "fit" for kind, _ in _Spy.log) == fits
        assert len(scores) == 3
        assert (len({id(s) for s in scores}) == 1) == (fraction == 1.0)  # one fit stands for every seed at 100%


def test_one_shot_with_groups_whose_carve_out_takes_a_class_uses_the_defaults():
    """A class's one label in a validation group left the fit side one class: the linear
    probe's choice failed with a traceback and stopped the whole bench."""
    from unlabeled.bench.protocol import ProbeData, fit_and_score

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    X = rng.normal(size=(120, 8)) + y[:, None]
    groups = np.arange(120) // 5  # a patient's five samples together
    data = ProbeData(X[:100], y[:100], X[100:], y[100:], groups=np.r_[groups[:50], groups[60:110]])
    for seed in range(4):
        score = fit_and_score(data, "linear", Setting(shots=1), seed)
        assert score.n_labels == 2 and 0 <= score.value <= 1


def test_a_nan_validation_score_never_wins_a_grid():
    """np.argmax returns the first NaN: a value whose fit diverged won the grid. A NaN is the
    worst score; equals go to the first value (the grid's default), all NaN too."""
    from unlabeled.bench.protocol import best_of

    assert best_of([float("nan"), 0.5, 0.7]) == 2
    assert best_of([0.7, float("nan"), 0.7]) == 0
    assert best_of([float("nan"), float("nan")]) == 0


def test_a_learning_rate_that_diverges_first_does_not_win_the_fine_tuning_grid(monkeypatch):
    """``tune`` kept the first rate's score when it was NaN (``x > nan`` is False)."""
    from unlabeled.bench import tuning

    scores = iter([float("nan"), -0.9, -0.4])

    class Fake:
        def __init__(self, **params):
            self.lr = params["lr"]

        def fit(self, *a):
            self.val_score_, self.best_epoch_ = next(scores), 2
            return self

    monkeypatch.setattr(tuning, "FinetuneProbe", Fake)
    x, y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    assert tuning.tune(x, y, x, y, lrs=(1.0, 0.1, 0.01), mode="full")["lr"] == 0.01
