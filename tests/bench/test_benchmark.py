import json
from pathlib import Path

import numpy as np
import pytest

import unlabeled as ul


@pytest.fixture(scope="module")
def run(fmnist_small, tmp_path_factory):
    return ul.pretrain(fmnist_small, tmp_path_factory.mktemp("runs") / "simclr", epochs=1, batch_size=64)


@pytest.fixture(scope="module")
def result(run, fmnist_small):
    return ul.bench(run, fmnist_small, fractions=[0.05, 1.0], shots=[5], seeds=2, baselines=["raw", "random-init"])


@pytest.mark.slow
def test_rows_have_every_model_probe_and_setting(result):
    doc = json.loads(result.json_path.read_text())
    assert doc["rows"] == result.rows and doc["unified"] == result.unified
    keys = {(r["model"], r["probe"], r["setting"]) for r in result.rows}
    models, probes = ("raw", "simclr", "random-init"), ("linear", "knn", "nb")
    assert keys == {(m, p, s) for m in models for p in probes for s in ("5%", "100%", "5-shot")}
    for r in result.rows:
        assert r["task"] == "fmnist-slice" and r["metric"] == "accuracy" and r["higher_is_better"]
        assert 0.1 < r["mean"] <= 1 and r["baseline"] == (r["model"] != "simclr")
        assert len(r["scores"]) == (1 if r["setting"] == "100%" else 2)  # every seed draws all: one fit
        assert set(r["metrics"]) == {"accuracy", "balanced_accuracy", "macro_f1", "auroc"}
        assert r["metrics"]["accuracy"]["mean"] == pytest.approx(r["mean"])
        assert 0.5 < r["metrics"]["auroc"]["mean"] <= 1
    assert result.score("raw", "linear", 1.0)["n_labels"] == 2000
    assert abs(result.score("raw", "linear", 0.05)["n_labels"] - 100) <= 5  # rounded per class
    assert result.score("raw", "linear", shots=5)["n_labels"] == 50
    # more labels help
    assert result.score("raw", "linear", 1.0)["mean"] > result.score("raw", "linear", 0.05)["mean"]
    assert result.unified["raw"] == 0 and min(result.unified.values()) >= -1 and max(result.unified.values()) <= 1


@pytest.mark.slow
def test_report_is_self_contained(result):
    page = result.report_path.read_text()
    assert page.count("data:image/png;base64,") >= 3 and "class='results'" in page and "id='unified'" in page
    assert "class='embedding-map'" in page and "<script" not in page
    assert "http://" not in page and "https://" not in page
    assert "simclr" in page and "random-init" in page


@pytest.mark.slow
def test_table_and_errors(result, fmnist_small, gunpoint):
    table = result.table()
    assert "5-shot" in table and "5%" in table and "unified score" in table
    assert "mean ± std over 2 seeds; a mean alone: every seed draws the same labels, so one fit" in table
    md = result.table(markdown=True).splitlines()
    head = md.index("| model | probe | 5-shot | 5% | 100% |")
    assert md[head + 1] == "|---|---|---|---|---|"
    body = md[head + 2 : md.index("", head)]
    assert len(body) == 9 and all(line.count("|") == 6 and " ± " in line for line in body)
    run = result.settings["runs"][0]
    with pytest.raises(ul.UnlabeledError, match="image samples"):
        ul.bench(run, gunpoint)
    with pytest.raises(ul.UnlabeledError, match="probe"):
        ul.bench(run, fmnist_small, probes=["svm"])
    with pytest.raises(ul.UnlabeledError, match="baseline"):
        ul.bench(run, fmnist_small, baselines=["ridge"])
    with pytest.raises(ul.UnlabeledError, match="not both"):
        ul.bench(run, fmnist_small, suite="ucr-small")


@pytest.mark.slow
def test_other_image_sizes_are_adapted_and_a_seed_repeats_exactly(run, digits, tmp_path):
    """8x8 digits through an encoder of 28x28 images: resized on the way in; the same seed
    gives the same numbers twice."""
    kw = dict(fractions=[0.2], seeds=1, probes=["linear", "knn"], baselines=["raw"], n_jobs=1)
    a = ul.bench(run, digits, out=tmp_path / "a", **kw)
    b = ul.bench(run, digits, out=tmp_path / "b", **kw)
    assert [r["scores"] for r in a.rows] == [r["scores"] for r in b.rows]
    assert a.score("simclr", "knn", 0.2)["mean"] > 0.6  # digits are separable through a Fashion-MNIST encoder
    assert a.embeddings[("digits", "simclr")][0].shape[1] == run.encode(digits, np.arange(2)).shape[1]


@pytest.mark.slow
def test_a_suite_file_with_relative_sources(run, fmnist_small, tmp_path):
    import shutil

    shutil.copytree(fmnist_small.path, tmp_path / "fm")
    (tmp_path / "mine.toml").write_text(
        'name = "mine"\n[[task]]\nname = "fm"\nsource = "fm"\n[[task]]\nsource = "digits"\nmetric = "macro_f1"\n'
    )
    r = ul.bench(
        run,
        suite=tmp_path / "mine.toml",
        fractions=[0.1],
        seeds=1,
        probes=["knn"],
        baselines=["raw"],
        out=tmp_path / "out",
        data_dir=tmp_path / "data",
    )
    assert {r["task"] for r in r.rows} == {"fm", "digits"} and r.settings["suite"] == "mine"
    assert next(x for x in r.rows if x["task"] == "digits")["metric"] == "macro_f1"
    assert (tmp_path / "data" / "mine" / "digits" / "collection.json").is_file()  # imported once
    assert not (tmp_path / "data" / "mine" / "fm").exists()  # a collection is used where it is
    (tmp_path / "bad.toml").write_text('[[task]]\nsource = "digits"\ncolour = "red"\n')
    with pytest.raises(ul.UnlabeledError, match="unknown key"):
        ul.bench(run, suite=tmp_path / "bad.toml")
    with pytest.raises(ul.UnlabeledError, match="built-in suites are"):
        ul.bench(run, suite="nope")


@pytest.mark.slow
def test_ucr_small_suite_with_one_series_encoder(gunpoint, tmp_path):
    """The built-in suite: other lengths resampled, multivariate sets one channel at a time,
    a regression task scored by MAE, k-shot skipped where there are no classes."""
    run = ul.pretrain(gunpoint, tmp_path / "mae", method="mae", epochs=2, batch_size=16)
    r = ul.bench(
        run,
        suite="ucr-small",
        fractions=[1.0],
        shots=[2],
        seeds=1,
        probes=["linear", "nb"],
        baselines=["raw"],
        out=tmp_path / "out",
        data_dir=tmp_path / "data",
    )
    tasks = r.settings["tasks"]
    assert len(tasks) == 7 and tasks["Covid3Month"]["kind"] == "regression"
    covid = [x for x in r.rows if x["task"] == "Covid3Month"]
    assert {x["probe"] for x in covid} == {"linear"} and {x["setting"] for x in covid} == {"100%"}
    assert covid[0]["metric"] == "mae" and not covid[0]["higher_is_better"]
    assert any("no regression form" in n for n in r.settings["notes"])
    motions = r.score("mae", "linear", 1.0, task="BasicMotions")
    assert motions["mean"] > 0.5  # 6-channel IMU through a univariate encoder, 4 classes
    assert r.embeddings[("BasicMotions", "mae")][0].shape[1] == 6 * run.encode(gunpoint, np.arange(1)).shape[1]


@pytest.mark.slow
def test_a_series_bench_shows_minirocket_beside_the_encoder_and_an_image_bench_does_not(gunpoint, digits, tmp_path):
    """MiniRocket's features (fitted on the train split, no labels) under the same probe and
    label draws: on GunPoint they separate the two classes almost perfectly, far above chance
    and above the raw series."""
    run = ul.pretrain(gunpoint, tmp_path / "mae", method="mae", epochs=1, batch_size=16)
    kw = {"fractions": [1.0], "seeds": 1, "probes": ["linear"], "baselines": ["raw", "minirocket"]}
    r = ul.bench(run, gunpoint, out=tmp_path / "out", **kw)
    assert {(x["model"], x["baseline"]) for x in r.rows} == {("mae", False), ("raw", True), ("minirocket", True)}
    rocket, raw = (r.score(m, "linear", 1.0)["mean"] for m in ("minirocket", "raw"))
    assert rocket > 0.9 and rocket > raw
    image_run = ul.pretrain(digits, tmp_path / "img", epochs=1, batch_size=64)
    assert "minirocket" not in {x["model"] for x in ul.bench(image_run, digits, out=tmp_path / "img-out", **kw).rows}


@pytest.mark.slow
def test_fine_tuning_probes_and_the_supervised_baseline(gunpoint, tmp_path):
    """LoRA on the pretrained encoder beside the same architecture trained from scratch on the
    same labels; their learning rates and epochs are chosen on the validation split."""
    run = ul.pretrain(gunpoint, tmp_path / "mae", method="mae", epochs=1, batch_size=16)
    r = ul.bench(
        run, gunpoint, fractions=[1.0], seeds=1, probes=["lora"], baselines=["supervised"], out=tmp_path / "out"
    )
    assert {(x["model"], x["probe"], x["baseline"]) for x in r.rows} == {
        ("mae", "lora", False),
        ("supervised", "finetune", True),
    }
    for x in r.rows:
        (params,) = x["params"]
        assert set(params) == {"lr", "epochs", "min_steps"} and params["epochs"] >= 1
        assert x["mean"] > 0.6  # GunPoint's two classes, 50 labels (chance 0.5)


@pytest.mark.slow
def test_an_interrupted_bench_resumes_from_its_finished_fits(run, digits, tmp_path, monkeypatch):
    import sys

    kw = dict(fractions=[0.2, 1.0], seeds=2, probes=["linear", "knn"], baselines=["raw"], out=tmp_path, n_jobs=1)
    first = ul.bench(run, digits, **kw)
    cache = tmp_path / "bench-cache.jsonl"
    lines = cache.read_text().splitlines()
    assert len(lines) == 2 * 2 * 2 * 2  # models x probes x settings x seeds
    # as if killed: half the fits on disk, the last line torn
    cache.write_text("\n".join(lines[:8]) + "\n" + lines[8][:20])
    module = sys.modules["unlabeled.bench.jobs"]
    calls = []
    real = module.fit_and_score  # one call per fit (a seed of a cell)
    monkeypatch.setattr(module, "fit_and_score", lambda *a: calls.append(a) or real(*a))
    again = ul.bench(run, digits, **kw)
    assert len(calls) == 8 and [r["scores"] for r in again.rows] == [r["scores"] for r in first.rows]
    calls.clear()
    ul.bench(run, digits, **kw)  # everything cached now
    assert not calls


def test_built_in_suites_name_their_sources():
    from unlabeled.bench.suites import builtin_suites, load_suite

    assert {"ucr-small", "images-small", "keywords"} <= set(builtin_suites())
    assert load_suite("keywords").tasks[0].source == "espeak-keywords"  # a name, not a path beside the file
    assert load_suite("ucr-small").tasks[0].source == "ucr:GunPoint"


def test_a_k_shot_setting_above_the_smallest_class_says_so(digits):
    from unlabeled.bench.jobs import plan_task
    from unlabeled.bench.request import BenchRequest
    from unlabeled.bench.tasks import make_task

    task = make_task(digits)
    fewest = int(np.unique(task.y_train, return_counts=True)[1].min())
    notes: list[str] = []
    plan_task(task, BenchRequest(runs=("r",), task="t", shots=(5, fewest + 1)), notes)
    assert [n for n in notes if "smallest class" in n] == [
        f"{task.name}: its smallest class has {fewest} labelled train samples: the {fewest + 1}-shot setting(s) "
        "use all of that class's samples"
    ]


def test_a_fraction_below_one_label_per_class_says_how_many_it_draws(digits):
    """0.0001 of digits' 1,438 labelled samples drew one of each of the 10 classes, and the
    report's column said 0.01% with no word."""
    from unlabeled.bench.jobs import plan_task
    from unlabeled.bench.request import BenchRequest
    from unlabeled.bench.tasks import make_task

    task = make_task(digits)
    notes: list[str] = []
    plan_task(task, BenchRequest(runs=("r",), task="t", fractions=(0.0001, 0.01, 0.1)), notes)
    said = [n for n in notes if "at least one label of each class" in n]
    assert len(said) == 1 and "0.0001" in said[0] and "10 labels" in said[0], notes


def test_a_run_trained_on_the_test_samples_is_not_scored_as_held_out(gunpoint, tmp_path):
    """A classifier that learnt test samples' labels is refused; an encoder pretrained on
    their inputs is scored with a note that says so."""
    from unlabeled import UnlabeledError

    test = gunpoint.indices("test")
    kw = {"fractions": [1.0], "seeds": 1, "probes": ["linear"], "baselines": []}
    with pytest.raises(UnlabeledError, match="5 of the positions are in the test split"):
        ul.finetune(None, gunpoint, tmp_path / "ft", positions=np.concatenate([gunpoint.indices("train"), test[:5]]))
    clf = ul.finetune(None, gunpoint, tmp_path / "ft", epochs=1)
    with open(clf.path / "training-ids.txt", "a") as f:  # as a run from elsewhere, trained on test samples, says
        f.writelines(f"{i}\n" for i in gunpoint.ids[test[:5]])
    with pytest.raises(UnlabeledError, match="trained on 5 of task .* 150 test samples, with their labels"):
        ul.bench(clf, gunpoint, out=tmp_path / "b1", **kw)
    enc = ul.pretrain(gunpoint, tmp_path / "pre", method="mae", epochs=1, batch_size=16, exclude_split=None)
    notes = ul.bench(enc, gunpoint, out=tmp_path / "b2", **kw).settings["notes"]
    assert any("pretrained on 150 of its 150 test samples" in n for n in notes)
    clean = ul.pretrain(gunpoint, tmp_path / "clean", method="mae", epochs=1, batch_size=16)
    assert not any("test samples" in n for n in ul.bench(clean, gunpoint, out=tmp_path / "b3", **kw).settings["notes"])
    labelled = ul.finetune(None, gunpoint, tmp_path / "ft2", epochs=1)
    notes = ul.bench(labelled, gunpoint, out=tmp_path / "b4", **kw).settings["notes"]
    assert any("is a classifier trained on 50 of its labelled train samples" in n for n in notes)
    from_encoder = ul.finetune(clean, gunpoint, tmp_path / "ft3", epochs=1)  # the chain goes on to its encoder
    notes = ul.bench(from_encoder, gunpoint, out=tmp_path / "b5", **kw).settings["notes"]
    assert any("is a classifier trained on 50" in n for n in notes) and not any("test samples" in n for n in notes)


def test_digits_hold_out_a_stratified_test_split(digits):
    """scikit-learn's digits have no split of their own: the import makes bench's (20%,
    stratified, seed 0), so finetune and pretrain hold it out as every command does."""
    test = digits.indices("test")
    assert len(test) == 359 and len(digits.indices("train")) == 1438
    assert set(np.unique(digits.labels[test])) == set(range(10))


def test_list_arguments_given_a_lone_value_are_refused(run, fmnist_small, tmp_path):
    from unlabeled import UnlabeledError

    for kwargs in ({"probes": "linear"}, {"fractions": 0.5}, {"baselines": "raw"}):
        with pytest.raises(UnlabeledError, match="must be a list"):
            ul.bench(run, fmnist_small, out=tmp_path / "x", **kwargs)
    with pytest.raises(UnlabeledError, match="ratio must be a whole number"):
        ul.selftrain(None, fmnist_small, tmp_path / "st", shots=2, ratio=2.5)
    # "0.1" as a string suggests the list of numbers it meant; a fraction or seed count of the
    # wrong kind is named before any work (seeds=1.5 was a TypeError from deep inside)
    for kwargs, said in (
        ({"fractions": "0.1,1"}, r"e\.g\. fractions=\[0\.1, 1\.0\]"),
        ({"fractions": ["0.1"]}, "label fractions must be numbers"),
        ({"seeds": 1.5}, "seeds must be a whole number"),
        ({"fractions": [], "shots": [2.5]}, "shots must be a whole number"),
    ):
        with pytest.raises(UnlabeledError, match=said):
            ul.bench(run, fmnist_small, out=tmp_path / "x", **kwargs)


def test_a_bench_out_is_never_a_collection_or_a_folder_of_other_files(run, fmnist_small, tmp_path):
    from unlabeled import UnlabeledError

    kw = {"fractions": [1.0], "seeds": 1, "probes": ["linear"], "baselines": []}
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    for out, match in ((fmnist_small.path, "is or is inside a collection"), (tmp_path / "mine", "not a bench's")):
        with pytest.raises(UnlabeledError, match=match):
            ul.bench(run, fmnist_small, out=out, **kw)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine" and not (fmnist_small.path / "bench.json").exists()


def test_a_group_aware_validation_split_with_classes_smaller_than_its_folds():
    """At a few labels every class can be smaller than the folds StratifiedGroupKFold needs:
    the split is then made by group alone, still with no group on both sides."""
    from unlabeled.data.splits import holdout_split

    labels, groups = np.array([0, 1, 2] * 4), np.arange(12) % 6
    fit, held = holdout_split(12, 0.2, 0, labels, groups)
    assert len(held) and not set(groups[fit]) & set(groups[held])


@pytest.mark.parametrize(
    "line, message",
    [
        ('metric = "accuracyy"', "'accuracyy' is an unknown metric"),
        ('kind = "regression"\nmetric = "accuracy"', "'accuracy' is not a regression metric; choose from mae"),
        ('kind = "ordinal"', "kind must be classification or regression"),
        ('split = "random"', "unknown split rule 'random'"),
        ('split = "group"', "needs a group column"),
        ('modality = "video"', "unknown modality 'video'"),
        ("columns = 3", "columns must be a list"),
        ("target = 7", "target must be a string"),
    ],
)
def test_a_suites_last_task_is_checked_before_the_first_is_imported(line, message, tmp_path, monkeypatch):
    """A mistake in a suite's last task used to surface only when that task's turn came, after
    every task before it had been imported (and, through bench, benched)."""
    from unlabeled.bench import suites

    imported = []
    monkeypatch.setattr(suites, "import_source", lambda *a, **k: imported.append(a))
    (tmp_path / "s.toml").write_text(f'[[task]]\nsource = "digits"\n\n[[task]]\nsource = "fashion-mnist"\n{line}\n')
    with pytest.raises(ul.UnlabeledError, match=message) as e:
        suites.load_suite(tmp_path / "s.toml")
    assert "task 'fashion-mnist'" in str(e.value) and not imported
    (tmp_path / "ok.toml").write_text('[[task]]\nsource = "digits"\nmetric = "macro_f1"\nsplit = "stratified"\n')
    assert suites.load_suite(tmp_path / "ok.toml").tasks[0].options == {"metric": "macro_f1", "split": "stratified"}
    (tmp_path / "t.toml").write_text('[[task]]\nsource = "no-such-folder"\n')
    with pytest.raises(ul.UnlabeledError, match="no-such-folder does not exist"):
        suites.load_suite(tmp_path / "t.toml")


@pytest.mark.slow
def test_the_maps_are_made_by_the_workers_beside_the_fits_and_not_again_by_the_report(
    run, digits, tmp_path, monkeypatch
):
    import matplotlib.pyplot as plt

    from unlabeled.bench import embedding_map, report

    monkeypatch.setattr(report, "embedding_maps", lambda *a, **k: pytest.fail("the report made the maps itself"))
    drawn = {}
    monkeypatch.setattr(report, "embedding_figure", lambda maps, kind: drawn.update(maps) or plt.figure())
    r = ul.bench(run, digits, out=tmp_path, fractions=[0.2], seeds=1, probes=["knn"], baselines=["raw"], n_jobs=2)
    assert "t-SNE map of digits" in r.report_path.read_text()
    # the coordinates a t-SNE of the same panels gives in this process
    panels = embedding_map.embedding_panels(r.embeddings, ["digits"], ["simclr", "raw"])["digits"]
    assert set(drawn) == set(panels) == {"simclr", "raw"}
    for m, (xy, y) in drawn.items():
        np.testing.assert_allclose(xy, embedding_map.tsne_2d(panels[m][0]), rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(y, panels[m][1])


def test_a_run_named_as_a_baseline_or_as_another_run_is_told_apart():
    """A run in a folder named ``raw`` took the raw baseline's row: the report showed one
    ``raw linear`` (the run's) and the baseline nowhere."""
    from types import SimpleNamespace

    from unlabeled.bench.features import _model_names

    runs = [SimpleNamespace(name=p.name, path=p) for p in map(Path, ("y/raw", "x/a", "z/a", "w/b", "v/supervised"))]
    assert _model_names(tuple(runs)) == ["y/raw", "x/a", "z/a", "b", "v/supervised"]
    # the same folder and parent names: more of the path (one's rows took the other's)
    runs = [SimpleNamespace(name=p.name, path=p) for p in map(Path, ("/r/x/exp/run", "/r/y/exp/run", "/r/c"))]
    assert _model_names(tuple(runs)) == ["x/exp/run", "y/exp/run", "c"]


def test_an_interrupted_run_is_scored_with_a_note(run, tmp_path):
    """A pretraining killed at step 60 was benched without a word in the notes or the report."""
    import shutil

    from unlabeled.bench.benchmark import _note_unfinished
    from unlabeled.train import checkpoint as ckpt

    notes: list[str] = []
    _note_unfinished(run, notes)
    assert notes == []  # finished: nothing to say
    shutil.copytree(run.path, tmp_path / "cut")
    state = ckpt.load_state(tmp_path / "cut" / ckpt.STATE_FILE)
    ckpt.save_state(tmp_path / "cut" / ckpt.STATE_FILE, {**state, "total_steps": state["step"] + 100})
    _note_unfinished(ul.open_run(tmp_path / "cut"), notes)
    assert len(notes) == 1 and f"stopped at step {state['step']} of {state['step'] + 100}" in notes[0]


def test_a_suite_imports_its_source_again_once_it_changed(tmp_path):
    """Suite imports were reused by folder name alone: a source edited since (its labels
    shuffled) was benched as first imported, with no word of it."""
    from unlabeled.bench import suites

    rows = ["label," + ",".join(f"t{i}" for i in range(12))]
    rows += [f"{r % 2}," + ",".join(str(r + i) for i in range(12)) for r in range(8)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mine.toml").write_text(f'name = "mine"\n[[task]]\nsource = "{tmp_path / "series.csv"}"\n')
    suite = suites.load_suite(tmp_path / "mine.toml")
    first = suite.load(tmp_path / "data")[0].collection
    assert len(first) == 8
    made = (first.path / "collection.json").stat().st_mtime_ns
    suite.load(tmp_path / "data")  # unchanged: the import is reused, not made again
    assert (first.path / "collection.json").stat().st_mtime_ns == made
    flipped = [rows[0]] + [f"{(r + 1) % 2}," + ",".join(str(r + i) for i in range(12)) for r in range(8)]
    (tmp_path / "series.csv").write_text("\n".join(flipped) + "\n")
    again = suite.load(tmp_path / "data")[0].collection
    assert [again.classes[c] for c in again.labels] == [str((r + 1) % 2) for r in range(8)]


def test_bench_json_is_strict_json_and_a_test_split_of_one_class_is_noted(tmp_path):
    """A test split of one class has no AUROC: bench.json held a bare NaN, which JSON has not
    (strict readers refuse the file), and no note said why the scores were so."""
    from unlabeled.bench.benchmark import strict_json
    from unlabeled.bench.jobs import plan_task
    from unlabeled.bench.request import BenchRequest
    from unlabeled.bench.tasks import make_task
    from unlabeled.data.collection import CollectionWriter

    doc = strict_json({"rows": [{"mean": float("nan"), "scores": [0.5, float("inf")], "n": 3}], "ok": 1.5})
    assert json.loads(json.dumps(doc, allow_nan=False)) == {
        "rows": [{"mean": None, "scores": [0.5, None], "n": 3}],
        "ok": 1.5,
    }
    rng = np.random.default_rng(0)
    w = CollectionWriter(tmp_path / "col", "image", (1, 4, 4), "uint8", ["a", "b"])
    labels, splits = np.r_[rng.integers(0, 2, 40), np.zeros(10, int)], ["train"] * 40 + ["test"] * 10
    w.add(rng.integers(0, 256, (50, 1, 4, 4), dtype=np.uint8), [f"s{i}" for i in range(50)], labels, splits=splits)
    notes: list[str] = []
    plan_task(make_task(w.close()), BenchRequest(runs=("r",), task="t", fractions=(1.0,)), notes)
    assert any("1 class(es) have no test sample" in n and "AUROC is undefined" in n for n in notes), notes


def test_a_bench_in_which_no_probe_applies_is_refused_with_the_reasons(tmp_path):
    """``--probes nb`` on a regression target: "bench: 0 cells", an empty table, exit code 0."""
    from types import SimpleNamespace

    from unlabeled.bench.benchmark import _check_something_to_score
    from unlabeled.bench.tasks import make_task
    from unlabeled.data.collection import CollectionWriter

    rng = np.random.default_rng(0)
    w = CollectionWriter(tmp_path / "col", "image", (1, 4, 4), "uint8", None)
    w.add(
        rng.integers(0, 256, (40, 1, 4, 4), dtype=np.uint8),
        [f"s{i}" for i in range(40)],
        columns={"y": rng.normal(size=40)},
    )
    task = make_task(w.close(), target="y")
    request = SimpleNamespace(probes=("nb",), fractions=(1.0,), shots=(), seeds=1, baselines=())
    with pytest.raises(ul.UnlabeledError, match="nothing to score: .*probe nb has no regression form"):
        _check_something_to_score([task], request)
    _check_something_to_score([task], SimpleNamespace(**{**vars(request), "probes": ("nb", "linear")}))


def test_a_class_only_in_the_test_split_is_noted(tmp_path):
    from unlabeled.bench.jobs import plan_task
    from unlabeled.bench.request import BenchRequest
    from unlabeled.bench.tasks import make_task
    from unlabeled.data.collection import CollectionWriter

    rng = np.random.default_rng(0)
    w = CollectionWriter(tmp_path / "col", "image", (1, 4, 4), "uint8", ["a", "b", "c"])
    labels, splits = np.r_[rng.integers(0, 2, 40), [0, 1, 2, 2]], ["train"] * 40 + ["test"] * 4
    w.add(rng.integers(0, 256, (44, 1, 4, 4), dtype=np.uint8), [f"s{i}" for i in range(44)], labels, splits=splits)
    notes: list[str] = []
    plan_task(make_task(w.close()), BenchRequest(runs=("r",), task="t", fractions=(1.0,)), notes)
    assert any("1 class(es) of the test split have no train sample" in n for n in notes), notes


def test_options_of_the_other_kind_of_bench_are_noted_not_dropped_silently(run, fmnist_small, tmp_path):
    """``--data-dir`` with ``--task``, and a single task's options (``--group-column``,
    ``--metric``) with ``--suite``, were ignored without a word."""
    from unlabeled._console import console
    from unlabeled.bench.benchmark import _load_tasks
    from unlabeled.bench.request import BenchRequest

    with console.capture() as captured:
        _load_tasks(BenchRequest(runs=(run,), task=fmnist_small, data_dir=tmp_path / "data"))
    assert "--data-dir ignored" in captured.get()
    (tmp_path / "mine.toml").write_text('name = "mine"\n[[task]]\nname = "fm"\nsource = "fm"\n')
    import shutil

    shutil.copytree(fmnist_small.path, tmp_path / "fm")
    with console.capture() as captured:
        _load_tasks(BenchRequest(runs=(run,), suite=tmp_path / "mine.toml", group="user", metric="macro_f1"))
    assert "--metric, --group-column ignored: the suite defines each of its tasks" in captured.get()
    with console.capture() as captured:  # the defaults say nothing
        _load_tasks(BenchRequest(runs=(run,), task=fmnist_small))
        _load_tasks(BenchRequest(runs=(run,), suite=tmp_path / "mine.toml"))
    assert "ignored" not in captured.get()
