import numpy as np
import pytest

from unlabeled.bench.metrics import CLASSIFICATION_METRICS, higher_is_better, score, score_all


def test_classification_metrics_match_their_definitions():
    y = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    proba = np.eye(3)[pred] * 0.7 + 0.1
    m = score_all("classification", y, pred, proba, np.arange(3))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert 0 < m["macro_f1"] < 1 and 0.5 < m["auroc"] < 1
    perfect = score_all("classification", y, y, np.eye(3)[y], np.arange(3))
    assert perfect["auroc"] == 1 and perfect["macro_f1"] == 1


def test_binary_auroc_and_missing_probabilities():
    y = np.array(["a", "a", "b", "b"])
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55]])
    assert score_all("classification", y, y, proba, np.array(["a", "b"]))["auroc"] == 1
    assert np.isnan(score_all("classification", y, y, None)["auroc"])


def test_regression_metrics_and_signs():
    y, pred = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.5, 2.0, 2.0, 4.0])
    m = score_all("regression", y, pred)
    assert m["mae"] == pytest.approx(0.375) and m["rmse"] == pytest.approx(np.sqrt(1.25 / 4))
    assert m["r2"] == pytest.approx(1 - 1.25 / 5)
    assert not higher_is_better("mae") and higher_is_better("r2")
    assert score("regression", "mae", y, pred) == pytest.approx(-0.375)  # larger is better when choosing


def test_auroc_skips_a_test_class_that_no_training_label_had():
    # few labels of many classes: class 3 is in the test split, the model was never told of it
    y = np.array([0, 0, 1, 1, 2, 2, 3])
    proba = np.eye(3)[[0, 0, 1, 1, 2, 2, 0]] * 0.7 + 0.1
    m = score_all("classification", y, proba.argmax(1), proba, np.arange(3))
    # classes 1 and 2 are ranked perfectly; class 0's scores tie its two samples with class 3's
    assert m["auroc"] == pytest.approx((0.9 + 1 + 1) / 3)


def test_macro_f1_is_over_the_classes_the_test_split_holds():
    """A class only the train split holds, predicted once, added an F1 of 0 to the mean, where
    the report says scores are over the test split's classes (as balanced accuracy is)."""
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    assert CLASSIFICATION_METRICS["macro_f1"](y, p, None, np.array([0, 1, 2])) == pytest.approx((2 / 3 + 1) / 2)


def test_a_fraction_raised_to_a_label_a_class_is_drawn_where_its_labels_are():
    """Fractions 0.001 and 0.01 of 1,000 images drew the same 10 labels (one a class) and were
    drawn a decade apart on the labels axis."""
    from unlabeled.bench.figures import _x_of

    assert _x_of({"fraction": 0.001, "n_labels": 10}, 1000) == _x_of({"fraction": 0.01, "n_labels": 10}, 1000) == 1.0
    assert _x_of({"fraction": 0.1}, 1000) == 10.0  # a row without its count: the fraction
