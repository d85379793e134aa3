import numpy as np

from unlabeled.bench.protocol import evaluate


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
