import numpy as np
import pandas as pd
import pytest

import unlabeled as ul
from unlabeled.bench.features import raw_features
from unlabeled.bench.protocol import Setting, evaluate
from unlabeled.bench.tasks import make_task
from unlabeled.data.splits import holdout_split

SPEAKER = r"/([^/]+)-s\d+-p\d+\.wav$"  # keywords/<split>/<word>/<voice>-s<speed>-p<pitch>.wav


@pytest.fixture(scope="module")
def keywords_by_speaker(keywords_wav, tmp_path_factory):
    return ul.import_source(keywords_wav, tmp_path_factory.mktemp("data") / "kw", group_pattern=SPEAKER).collection


@pytest.fixture(scope="module")
def covid(tmp_path_factory):
    return ul.import_source("ucr:Covid3Month", tmp_path_factory.mktemp("data") / "covid").collection


def test_group_pattern_and_group_aware_splits(keywords_by_speaker):
    col = keywords_by_speaker
    assert col.groups is not None and len(set(col.groups)) == 3  # three espeak voices
    assert col.meta["exact_duplicates"] == 0  # three voices that really differ (espeak ignores en-gb variants)
    given = make_task(col, group="group")
    assert "group-disjoint" in given.split  # the script already holds a speaker out
    task = make_task(col, group="group", split="group")
    train_speakers, test_speakers = set(col.groups[task.train]), set(col.groups[task.test])
    assert train_speakers.isdisjoint(test_speakers) and len(train_speakers) == 2
    # the validation split inside the labelled subset is group-aware too
    fit, val = holdout_split(len(task.train), 0.2, 0, task.y_train, task.groups_train)
    assert set(task.groups_train[fit]).isdisjoint(task.groups_train[val])
    stratified = make_task(col, split="stratified")
    assert set(col.groups[stratified.train]) & set(col.groups[stratified.test])  # what group splits prevent


def test_regression_task_from_a_target_column(covid):
    task = make_task(covid, target="target")
    assert task.kind == "regression" and task.metric == "mae" and task.split == "the collection's train/test split"
    X = raw_features(covid, np.concatenate([task.train, task.test]), fit_on=task.train)
    Xtr, Xte = X[: len(task.train)], X[len(task.train) :]
    s = evaluate(
        Xtr, task.y_train, Xte, task.y_test, "linear", Setting(fraction=1.0), 0, kind="regression", metric="mae"
    )
    mean_guess = np.abs(task.y_test - task.y_train.mean()).mean()
    assert set(s.metrics) == {"mae", "rmse", "r2"} and s.value == s.metrics["mae"]
    assert s.value < 1.5 * mean_guess and s.param in (1.0, 10.0, 100.0, 1000.0)
    with pytest.raises(ValueError, match="no regression form"):
        evaluate(Xtr, task.y_train, Xte, task.y_test, "nb", 1.0, 0, kind="regression")
    with pytest.raises(ValueError, match="k-shot"):
        evaluate(Xtr, task.y_train, Xte, task.y_test, "linear", Setting(shots=5), 0, kind="regression")


def test_target_and_group_columns_from_a_series_table(gunpoint, tmp_path):
    """A wide table with a numeric target and a subject column kept as per-sample columns."""
    x = gunpoint.get(gunpoint.indices())[:, 0, :40]
    df = pd.DataFrame(x, columns=[f"t{i}" for i in range(40)])
    df["fev1"] = x.std(axis=1)  # a real quantity of each recording
    df["subject"] = [f"s{i % 7}" for i in range(len(df))]
    df.to_csv(tmp_path / "series.csv", index=False)
    col = ul.import_source(tmp_path / "series.csv", tmp_path / "col", columns=["fev1", "subject"]).collection
    assert col.sample_shape == (1, 40) and col.columns == ["fev1", "subject"]
    task = make_task(col, target="fev1", group="subject")
    assert task.kind == "regression" and "subject-disjoint" in task.split
    assert set(col.column("subject")[task.train]).isdisjoint(col.column("subject")[task.test])
    cls = make_task(col, target="subject")  # a text column is a set of classes
    assert cls.kind == "classification" and len(cls.classes) == 7


def test_task_errors(gunpoint, covid):
    with pytest.raises(ul.UnlabeledError, match="no column 'fev1'"):
        make_task(gunpoint, target="fev1")
    with pytest.raises(ul.UnlabeledError, match="no labels"):
        make_task(covid)
    with pytest.raises(ul.UnlabeledError, match="not a regression metric"):
        make_task(covid, target="target", metric="accuracy")
    with pytest.raises(ul.UnlabeledError, match="group column"):
        make_task(gunpoint, split="group")
    with pytest.raises(ul.UnlabeledError, match="split rule"):
        make_task(gunpoint, split="random")


def test_a_task_whose_train_split_holds_one_class_is_refused_in_one_line(tmp_path):
    from unlabeled.data.collection import CollectionWriter

    w = CollectionWriter(tmp_path / "one", "text", (), "object", ["only", "other"], {})
    w.add([f"only class document {i}" for i in range(30)], [f"d{i}" for i in range(30)], [0] * 30)
    with pytest.raises(ul.UnlabeledError, match="one class \\('only'\\); a classifier needs two"):
        make_task(w.close())


def test_a_task_whose_samples_are_all_test_is_not_carved_unasked(tmp_path):
    """A collection whose labelled samples are all in its test split was carved 80/20, so 80% of
    the samples its maker set aside trained the probes; it is refused under ``auto``, and carved
    when the user asks for it."""
    from unlabeled.data.collection import CollectionWriter

    w = CollectionWriter(tmp_path / "held", "text", (), "object", ["a", "b"], {})
    w.add([f"document {i}" for i in range(40)], [f"d{i}" for i in range(40)], [i % 2 for i in range(40)], ["test"] * 40)
    col = w.close()
    with pytest.raises(ul.UnlabeledError, match="a test split but no train split.*--split stratified"):
        make_task(col)
    task = make_task(col, split="stratified")
    assert (len(task.train), len(task.test)) == (32, 8)


def test_a_column_with_another_value_for_every_sample_is_no_target(tmp_path):
    """`--target-column id` (every value different) said "the split left no test samples"."""
    from unlabeled.data.collection import CollectionWriter

    w = CollectionWriter(tmp_path / "c", "text", (), "object", None, {})
    w.add(
        [f"document {i}" for i in range(12)],
        [f"d{i}" for i in range(12)],
        columns={"name": [f"n{i}" for i in range(12)]},
    )
    with pytest.raises(
        ul.UnlabeledError, match="column 'name' .* holds another value for every sample: it is no target"
    ):
        make_task(w.close(), target="name")
