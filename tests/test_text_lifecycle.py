"""Text through the rest of the lifecycle, once each end to end on real WordNet glosses:
selection on a text encoder's embeddings, and forgetting a category from a text classifier."""

from __future__ import annotations

import numpy as np
import pytest

import unlabeled as ul
from unlabeled.forget.verify import predict


@pytest.fixture(scope="module")
def mlm(wordnet_small, tmp_path_factory):
    return ul.pretrain(wordnet_small, tmp_path_factory.mktemp("runs") / "mlm", method="mlm", epochs=1, batch_size=64)


def test_selection_on_text_embeddings_writes_a_text_collection_of_train_glosses(wordnet_small, mlm, tmp_path):
    chosen = ul.select(wordnet_small, method="kcenter", budget=0.25, encoder=mlm, out=tmp_path / "sel")
    assert chosen.is_text and len(chosen) == 500
    train_ids = set(wordnet_small.ids[wordnet_small.indices("train")])
    assert set(chosen.ids) <= train_ids  # never a test gloss
    # the selected documents are the pool's own text, byte for byte
    pos = wordnet_small.positions(list(chosen.ids[:20]))
    assert list(chosen.get(np.arange(20))) == list(wordnet_small.get(pos))


@pytest.mark.slow
def test_retraining_a_text_classifier_without_a_category_forgets_it(wordnet_small, mlm, tmp_path):
    clf = ul.finetune(mlm, wordnet_small, tmp_path / "clf", epochs=4)
    forgot = ul.forget(clf, method="retrain", class_="noun.artifact", out=tmp_path / "forgot", ancestors="keep")
    code = wordnet_small.classes.index("noun.artifact")
    trained = wordnet_small.positions(list(forgot.training_ids()))
    assert (wordnet_small.labels[trained] != code).all() and len(trained) < len(clf.training_ids())
    test = wordnet_small.indices("test")
    test = test[wordnet_small.labels[test] == code]

    def share(run):  # how many of the category's test glosses the run calls by its name
        probs = predict(run.classifier(), run.modality(), wordnet_small, test)
        return float((probs.argmax(1) == code).mean())

    # noun.artifact is WordNet's largest category: the classifier names it often, the retrained one never can
    assert share(clf) > 0.2 and share(forgot) == 0.0
