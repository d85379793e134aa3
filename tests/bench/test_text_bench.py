"""Text through the benchmark: TF-IDF as the raw baseline (fitted on the train split), sparse
features under the same probes, and a pretrained text encoder benched end to end."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import unlabeled as ul
from unlabeled.bench.features import tfidf_features
from unlabeled.bench.protocol import evaluate
from unlabeled.data.collection import CollectionWriter


def test_tfidf_is_fitted_on_the_train_split_alone(tmp_path):
    train = [f"the cat sat on the mat number {i}" for i in range(50)]
    test = ["zyzzyva quetzal"] * 10
    w = CollectionWriter(tmp_path / "c", "text", (), "object")
    w.add(train + test, [str(i) for i in range(60)], splits=["train"] * 50 + ["test"] * 10)
    col = w.close()
    X = tfidf_features(col, col.indices(), fit_on=col.indices("train"))
    assert sp.issparse(X) and X.shape[0] == 60
    np.testing.assert_allclose(np.sqrt(X[:50].multiply(X[:50]).sum(1)).A1, 1.0, rtol=1e-5)  # unit rows
    # the test documents' words were never seen: only the character n-grams they share ("qu", " z") remain
    assert X[50:].nnz < X[:10].nnz


def test_tfidf_of_text_without_spaces_counts_characters_alone(tmp_path):
    """Unspaced text (Chinese, Japanese) makes every document one word seen once: the word
    part has no n-gram left at two documents and is left out, the character part stays."""
    rng = np.random.default_rng(5)
    docs = ["".join(rng.choice(list("猫犬鳥魚馬牛羊" if i % 2 else "株価銀行市場金融投資"), 12)) for i in range(40)]
    w = CollectionWriter(tmp_path / "c", "text", (), "object")
    w.add(docs, [str(i) for i in range(40)], splits=["train"] * 30 + ["test"] * 10)
    col = w.close()
    X = tfidf_features(col, col.indices(), fit_on=col.indices("train"))
    assert X.shape[0] == 40 and X.nnz > 0
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(1)).A1, 1.0, rtol=1e-5)  # one part: unit rows
    # three documents share nothing twice: every n-gram counts then
    w = CollectionWriter(tmp_path / "d", "text", (), "object")
    w.add(["xyz", "qrs", "uvw"], ["a", "b", "c"], splits=["train"] * 3)
    assert tfidf_features(w.close(), np.arange(3)).nnz > 0


@pytest.mark.slow
def test_sparse_features_go_through_the_linear_and_knn_probes(wordnet_small):
    col = wordnet_small
    train, test = col.indices("train"), col.indices("test")
    X = tfidf_features(col, np.concatenate([train, test]), fit_on=train)
    n = len(train)
    for probe in ("linear", "knn", "ridge"):
        s = evaluate(X[:n], col.labels[train], X[n:], col.labels[test], probe, 0.5, seed=0)
        assert s.value > 1.5 / 45, (probe, s)  # far above chance on 45 categories
    assert evaluate(X[:n], col.labels[train], X[n:], col.labels[test], "linear", 0.5, seed=0).param in (
        1.0,
        10.0,
        100.0,
    )


@pytest.mark.slow
def test_a_text_encoder_is_benched_beside_tfidf_end_to_end(wordnet_small, tmp_path):
    run = ul.pretrain(wordnet_small, tmp_path / "mlm", method="mlm", epochs=1, batch_size=64, precision="fp32")
    probes = ["linear", "knn", "finetune", "lora"]
    # one seed at 10%: the fine-tuning probes tune a transformer per seed (this test took 337 s
    # with the kernels held to AVX2, fp32, at two seeds and 20%)
    result = ul.bench(run, task=wordnet_small, fractions=[0.1], seeds=1, probes=probes, baselines=["raw"])
    rows = {(r["model"], r["probe"]): r for r in result.rows}
    assert {("raw", "linear"), ("raw", "knn")} | {(run.name, p) for p in probes} <= set(rows)
    assert all(0 < r["mean"] <= 1 for r in rows.values())


def test_semi_on_a_text_task_is_skipped_with_a_note_as_selftrain_refuses_it(wordnet_small):
    """FixMatch needs a weak and a strong view; text has no augmentations. ``bench --probes
    semi`` trained it anyway for minutes, the two views the same, where ``selftrain`` refuses."""
    from types import SimpleNamespace

    from unlabeled.bench.jobs import plan_task
    from unlabeled.bench.tasks import make_task

    notes: list[str] = []
    request = SimpleNamespace(probes=("linear", "semi", "finetune"), fractions=(0.1,), shots=(), seeds=1, baselines=())
    plan = plan_task(make_task(wordnet_small), request, notes)
    assert plan.raw_probes == ("finetune",) and plan.feature_probes == ("linear",)
    assert any("probe semi (FixMatch)" in n and "text has none" in n for n in notes)
