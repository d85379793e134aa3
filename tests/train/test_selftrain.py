"""``selftrain``: FixMatch on a few labels and every unlabelled sample, end to end on small
slices of real data, for every modality with augmentations."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled.bench.protocol import Setting
from unlabeled.data.collection import CollectionWriter
from unlabeled.runs import read_ids
from unlabeled.train import checkpoint as ckpt
from unlabeled.train import sampling
from unlabeled.train.finetune import finetune, labelled_train
from unlabeled.train.sampling import SemiSampler, SemiSource


def test_the_sampler_puts_labelled_then_unlabelled_and_covers_the_pool_once_an_epoch():
    lab, pool = np.array([3, 5, 8]), np.arange(100, 140)
    s = SemiSampler(lab, pool, batch=2, ratio=4, seed=0, offset=1000)
    assert s.steps_per_epoch == 5
    steps = [s.positions(k) for k in range(5)]
    assert all(len(p) == 10 and set(p[:2]) <= set(lab) for p in steps)
    assert s.samples_per_step == 10  # what the trainer's samples/s counts a step (it counted 2)
    unl = np.concatenate([p[2:] for p in steps]) - 1000
    assert sorted(unl) == pool.tolist()  # one epoch: every unlabelled sample once
    assert np.array_equal(s.positions(3), SemiSampler(lab, pool, 2, 4, 0, 1000).positions(3))  # a pure function
    ranks = [SemiSampler(lab, pool, 2, 4, 0, 1000, rank=r, world=2).positions(0)[2:] for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1])


def test_the_source_reads_the_same_sample_labelled_or_not(fmnist_small):
    y = np.full(len(fmnist_small), -1)
    y[[4, 9]] = fmnist_small.labels[[4, 9]]
    src = SemiSource(fmnist_small, y)
    pos = np.array([4, 9, 4 + len(fmnist_small)])
    assert np.array_equal(src.get(pos), fmnist_small.get([4, 9, 4]))
    assert src.labels[pos].tolist() == [fmnist_small.labels[4], fmnist_small.labels[9], -1]


@pytest.mark.slow
def test_a_self_trained_classifier_never_sees_the_test_split(tmp_path, fmnist_small, monkeypatch):
    read = []
    original = sampling.SemiSource.get

    def get(self, positions):
        read.append(np.asarray(positions) % self.n)
        return original(self, positions)

    monkeypatch.setattr(sampling.SemiSource, "get", get)
    run = ul.selftrain(None, fmnist_small, tmp_path / "st", shots=5, epochs=2, batch_size=16, ratio=3, size="tiny")
    assert run.kind == "classifier" and run.config["method"]["name"] == "fixmatch"
    test = set(fmnist_small.indices("test").tolist())
    assert read and not test & set(np.concatenate(read).tolist())
    # the labels are the ones bench and finetune draw for the same setting and seed
    train = labelled_train(fmnist_small)
    drawn = train[Setting(shots=5).subset(fmnist_small.labels[train], "classification", 0)]
    assert read_ids(run.path / "labelled-ids.txt") == [str(i) for i in fmnist_small.ids[drawn]]
    pool = fmnist_small.indices(exclude="test")
    assert read_ids(run.path / "training-ids.txt") == [str(i) for i in fmnist_small.ids[pool]]
    # a classifier run like any other: it predicts, resumes (finished) as it was, and fine-tunes further
    assert run.classifier()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert ul.selftrain(None, fmnist_small, tmp_path / "st", resume=True).step == run.step
    assert finetune(run, fmnist_small, tmp_path / "ft", epochs=1).config["source_run"] == str(run.path.resolve())
    with pytest.raises(ul.UnlabeledError, match="self-train again"):
        ul.forget(run, ids=[str(fmnist_small.ids[0])], out=tmp_path / "f")


@pytest.mark.slow
def test_self_training_from_a_pretrained_encoder_trains_on_pseudo_labels(tmp_path, fmnist_small):
    """With every pseudo-label counted (threshold 0), the unlabelled term trains too: the mask
    is full and the pseudo-label loss is finite and positive."""
    pre = ul.pretrain(fmnist_small, tmp_path / "pre", size="tiny", epochs=1, batch_size=64)
    run = ul.selftrain(pre, fmnist_small, tmp_path / "st", shots=3, epochs=1, batch_size=8, ratio=4, threshold=0.0)
    assert run.config["source_run"] == str(pre.path.resolve())
    last = json.loads((run.path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["mask"] == 1.0 and last["unsup"] > 0


def test_sgd_trains_with_nesterov_momentum_and_decays_the_weights_alone(tmp_path, fmnist_small):
    run = ul.selftrain(None, fmnist_small, tmp_path / "st", shots=3, epochs=0.2, batch_size=8, ratio=2, optimizer="sgd")
    assert run.config["train"]["optimizer"] == "sgd"
    state = ckpt.load_state(run.path / "state.pt")["optimizer"]
    decays = sorted(g["weight_decay"] for g in state["param_groups"])
    assert decays == [0.0, 1e-4] and all(g["nesterov"] and g["momentum"] == 0.9 for g in state["param_groups"])
    assert any("momentum_buffer" in s for s in state["state"].values())  # SGD's state, not Adam's moments


def test_batch_norm_statistics_are_recomputed_on_unaugmented_pool_samples_after_training(tmp_path, fmnist_small):
    kw = dict(shots=3, epochs=0.2, batch_size=8, ratio=2, precision="fp32")
    run = ul.selftrain(None, fmnist_small, tmp_path / "st", recalibrate=256, **kw)
    kept = ul.selftrain(None, fmnist_small, tmp_path / "kept", recalibrate=0, **kw)  # the same training
    a, b = run.weights(), kept.weights()
    stats = [k for k in a if k.endswith(("running_mean", "running_var"))]
    assert stats and all(torch.equal(a[k], b[k]) for k in a if k not in stats and "num_batches" not in k)
    # the first batch norm's mean is that of its input on 256 pool samples as they are (one
    # batch), drawn with the seed; the pool is every sample outside the test split
    pool = fmnist_small.indices(exclude="test")
    pos = np.sort(np.random.default_rng(0).choice(pool, 256, replace=False))
    clf, mod = kept.classifier(), kept.modality()
    norm = next(m for m in clf.modules() if isinstance(m, torch.nn.BatchNorm2d))
    seen = []
    handle = norm.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        clf(mod.normalize(mod.prepare(fmnist_small.get(pos))))
    handle.remove()
    name = next(k for k, m in clf.named_modules() if m is norm)
    mean = seen[0].transpose(0, 1).flatten(1).double().mean(1).float()
    # batch norm sums 200,704 values a channel in float32: on one thread (a test worker) its
    # mean was 2e-5 from the exact one, 1e-3 of the values; training's average is further off
    assert torch.allclose(a[f"{name}.running_mean"], mean, atol=1e-4)
    assert not torch.allclose(b[f"{name}.running_mean"], mean, atol=1e-3)  # training's average differs
    assert run.config["selftrain"]["recalibrate"] == run.config["selftrain"]["recalibrated"] == 256
    # more samples asked than the pool holds: the config records those used (it recorded the ask)
    from unlabeled.train.selftrain import recalibrate_batch_norm

    assert recalibrate_batch_norm(kept, fmnist_small, pool, 10**6, 0) == len(pool) < 10**6


def test_alignment_records_the_labelled_draws_class_frequencies_as_its_prior(tmp_path, fmnist_small):
    run = ul.selftrain(
        None, fmnist_small, tmp_path / "st", shots=3, epochs=0.2, batch_size=8, ratio=2, align=0.99, weight_decay=0.05
    )
    assert run.config["train"]["weight_decay"] == 0.05  # the optimiser's, as asked
    method = run.config["method"]
    assert method["align"] == 0.99 and method["prior"] == pytest.approx([0.1] * 10)  # 3 shots of each class
    assert "p_model" in ul.open_run(run.path).weights()  # the moving average is saved: resume aligns alike
    # a class only the test split holds has no label in any draw: its prior is a floor, not the
    # 0 that FixMatch refused ("prior needs 10 positive class frequencies")
    keep = np.flatnonzero((fmnist_small.labels != 9) | (fmnist_small.splits == "test"))
    w = CollectionWriter(tmp_path / "no9", "image", (1, 28, 28), "uint8", fmnist_small.classes)
    w.add(
        fmnist_small.get(keep),
        [str(i) for i in fmnist_small.ids[keep]],
        fmnist_small.labels[keep],
        fmnist_small.splits[keep],
    )
    run = ul.selftrain(None, w.close(), tmp_path / "no9-st", shots=3, epochs=0.05, batch_size=8, ratio=2, align=0.99)
    assert run.config["method"]["prior"][9] == pytest.approx(1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("data, encoder", [("gunpoint", "cnn"), ("keywords", "cnn"), ("volumes", "transformer")])
def test_every_modality_with_augmentations_self_trains(tmp_path, request, data, encoder):
    col = request.getfixturevalue(data)
    run = ul.selftrain(None, col, tmp_path / "st", epochs=1, batch_size=4, ratio=2, encoder=encoder, size="tiny")
    assert run.config["method"]["name"] == "fixmatch" and run.step >= 1
    assert run.config["modality"]["name"] == col.modality


def test_clear_errors(tmp_path, fmnist_small):
    train = fmnist_small.indices(exclude="test")
    one_class = train[fmnist_small.labels[train] == 0][:20]
    with pytest.raises(ul.UnlabeledError, match="no labelled sample of class"):
        ul.selftrain(None, fmnist_small, tmp_path / "a", labelled=one_class)
    with pytest.raises(ul.UnlabeledError, match="in the test split, which may not train"):
        ul.selftrain(None, fmnist_small, tmp_path / "b", unlabelled=fmnist_small.indices())
    with pytest.raises(ul.UnlabeledError, match="fewer than one batch"):
        ul.selftrain(None, fmnist_small, tmp_path / "c", shots=2, unlabelled=train[:50])
    with pytest.raises(ul.UnlabeledError, match="--threshold must be in"):
        ul.selftrain(None, fmnist_small, tmp_path / "d", threshold=1.5)
    with pytest.raises(ul.UnlabeledError, match="nothing to resume"):
        ul.selftrain(None, fmnist_small, tmp_path / "e", resume=True)
    with pytest.raises(ul.UnlabeledError, match="weight decay must be at least 0"):
        ul.selftrain(None, fmnist_small, tmp_path / "e", shots=3, weight_decay=-0.1)
    with pytest.raises(ul.UnlabeledError, match="unknown image augmentation setting"):
        ul.selftrain(None, fmnist_small, tmp_path / "f", shots=3, augment={"view_sise": 0})
    with pytest.raises(ul.UnlabeledError, match="optimizer must be adamw or sgd"):
        ul.selftrain(None, fmnist_small, tmp_path / "g", shots=3, optimizer="adam")
    assert not any((tmp_path / name).exists() for name in "abcdefg")  # a refused run leaves nothing behind


def test_a_train_split_of_one_class_is_refused_in_words(tmp_path):
    """Its probe head's logistic regression failed with scikit-learn's traceback."""
    import pandas as pd

    rng = np.random.default_rng(0)
    table = pd.DataFrame(rng.normal(size=(60, 16)), columns=[f"t{i}" for i in range(16)])
    table["label"] = ["neg"] * 45 + ["neg", "pos"] * 7 + ["pos"]
    table["split"] = ["train"] * 45 + ["test"] * 15
    table.to_csv(tmp_path / "s.csv", index=False)
    col = ul.import_source(tmp_path / "s.csv", tmp_path / "col").collection
    with pytest.raises(ul.UnlabeledError, match="hold one class; a classifier needs two"):
        ul.selftrain(None, col, tmp_path / "run", fraction=0.5, batch_size=4)
    assert not (tmp_path / "run").exists()


def test_augment_gives_full_size_strong_views_from_an_encoder_pretrained_on_small_ones(tmp_path, fmnist_small):
    pre = ul.pretrain(fmnist_small, tmp_path / "pre", epochs=0.1, batch_size=16, augment={"view_size": 12})
    inherited = ul.selftrain(pre, fmnist_small, tmp_path / "a", shots=3, epochs=0.1, batch_size=8, ratio=2)
    full = ul.selftrain(
        pre, fmnist_small, tmp_path / "b", shots=3, epochs=0.1, batch_size=8, ratio=2, augment={"view_size": 0}
    )
    assert inherited.config["modality"]["augment"]["view_size"] == 12
    assert full.config["modality"]["augment"]["view_size"] == 0
    x = torch.rand(4, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    assert full.modality().augment(x, g).shape[-2:] == (28, 28)
    assert inherited.modality().augment(x, g).shape[-2:] == (12, 12)


@pytest.mark.parametrize("classes", [2, 4])
def test_the_probe_head_is_the_logistic_regression_on_standardised_features(classes):
    from sklearn.linear_model import LogisticRegressionCV

    from unlabeled.train.selftrain import linear_head

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(classes), 10)
    feats = rng.normal(size=(len(y), 5)) * 3 + 2 + y[:, None]
    weight, bias = linear_head(feats, y, classes + 1)  # one class without a label
    logits = feats @ weight.T + bias
    z = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = LogisticRegressionCV(Cs=[0.01, 0.1, 1.0], cv=3, max_iter=1000).fit(z, y)
    margin = model.decision_function(z)
    if classes == 2:  # one logit: the difference of the two
        assert np.allclose(logits[:, 1] - logits[:, 0], margin, atol=1e-3)
    else:  # softmax is shift-invariant, and scikit-learn's multinomial logits are these
        assert np.allclose(logits[:, :classes], margin, atol=1e-3)
    assert (logits[:, classes] < logits[:, :classes].min(1) - 10).all()  # the class with no label: never predicted


def test_positions_given_through_the_api_are_whole_and_within_the_collection(gunpoint, tmp_path):
    for bad, match in (([-1, 2, 3], r"within 0\.\.199"), ([0.5, 1.7], "whole sample positions"), ([[1, 2]], "whole")):
        with pytest.raises(ul.UnlabeledError, match=match):
            ul.finetune(None, gunpoint, tmp_path / "x", positions=bad)
        with pytest.raises(ul.UnlabeledError, match=match):
            ul.selftrain(None, gunpoint, tmp_path / "x", unlabelled=bad)
    assert not (tmp_path / "x").exists()


def test_text_is_refused_in_words(wordnet_small, tmp_path):
    # it said "120 unlabelled samples are fewer than one batch of 224", of no help on text
    with pytest.raises(ul.UnlabeledError, match="is text, which has no augmentations"):
        ul.selftrain(None, wordnet_small, tmp_path / "st", fraction=0.1, epochs=0.1)
    assert not (tmp_path / "st").exists()


def test_the_ratio_default_is_the_one_chosen_on_the_development_split_in_the_cli_the_api_and_the_recipe():
    """mu 2, chosen at a fixed budget (BENCHMARKS.md, dev runs ac-ah), not FixMatch's 7: the
    command line, the function and the recorded recipe agree."""
    import inspect

    from unlabeled import cli
    from unlabeled.train.selftrain import SelftrainRecipe

    api = inspect.signature(ul.selftrain).parameters["ratio"].default
    command = inspect.signature(cli.selftrain_).parameters["ratio"].default
    assert api == command == SelftrainRecipe().ratio == 2
