"""Fine-tuning probes (full, LoRA, SVFit) on a slice of Fashion-MNIST, from runs pretrained
for a single SimCLR step: the probes train the encoder, so how well it was pretrained does
not matter here; what they learn from 300 labels does."""

import numpy as np
import pytest
import torch
from sklearn.base import clone, is_classifier, is_regressor

import unlabeled as ul
from unlabeled.bench.tuning import LR_GRID, MODES, FinetuneProbe, tune
from unlabeled.models.adapters import adaptable_layers, apply_lora, apply_svfit

FAST = dict(epochs=6, batch_size=32, min_steps=0)  # 60 steps on 300 samples
LR = {"full": 1e-3, "lora": 1e-2, "svfit": 1e-2}


@pytest.fixture(scope="module")
def runs(fmnist_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return {
        enc: str(ul.pretrain(fmnist_small, out / enc, encoder=enc, size="tiny", epochs=0.02, batch_size=64).path)
        for enc in ("cnn", "transformer")
    }


@pytest.fixture(scope="module")
def data(fmnist_small):
    tr, te = fmnist_small.indices("train"), fmnist_small.indices("test")[:300]
    parts = {"fit": tr[:300], "val": tr[300:450], "test": te}
    return {k: (fmnist_small.get(p), fmnist_small.labels[p]) for k, p in parts.items()}


@pytest.fixture(scope="module")
def fitted(runs, data):
    """One probe per mode on the CNN run, early-stopped on the validation split."""
    return {m: FinetuneProbe(runs["cnn"], mode=m, lr=LR[m], **FAST).fit(*data["fit"], *data["val"]) for m in MODES}


@pytest.mark.parametrize("mode", MODES)
def test_each_mode_learns_from_300_labels(fitted, data, mode):
    probe = fitted[mode]
    X, y = data["test"]
    assert probe.score(X, y) > 0.3  # chance: 0.1
    assert probe.classes_.tolist() == list(range(10)) and probe.epochs_run_ == 6
    np.testing.assert_allclose(probe.predict_proba(X[:5]).sum(1), 1, rtol=1e-6)


def test_the_best_epoch_is_restored(fitted, data):
    for probe in fitted.values():
        assert 1 <= probe.best_epoch_ <= probe.epochs_run_
        assert probe.val_score_ == probe.validation_score(*data["val"]) < 0  # minus a cross-entropy


def _base_state(probe: FinetuneProbe) -> dict[str, torch.Tensor]:
    """The fitted encoder's weights under the original names (an adapted layer keeps its
    frozen weights as ``<name>.base_layer``)."""
    state = probe.model_.encoder.state_dict()
    out = {}
    for key, value in state.items():
        if "lora_" in key or key.rsplit(".", 1)[-1] in ("u", "vh", "singular_values", "delta"):
            continue
        out[key.replace(".base_layer.", ".")] = value
    return out


def test_adapters_train_few_parameters_and_leave_the_base_frozen(fitted, runs):
    original = ul.open_run(runs["cnn"]).encoder().state_dict()
    full, lora, svfit = (fitted[m].trainable_params_ for m in MODES)
    head = 256 * 10 + 10
    assert full == sum(v.numel() for k, v in original.items() if "running" not in k and "tracked" not in k) + head
    assert svfit == 6 * 8 + head  # 6 convolutions, top-8 singular values each
    assert svfit < lora < full / 10
    for mode in ("lora", "svfit"):
        state = _base_state(fitted[mode])
        assert state.keys() == original.keys()
        for k in original:
            assert torch.equal(state[k], original[k]), (mode, k)  # batch-norm statistics included
    changed = _base_state(fitted["full"])
    assert not torch.equal(changed["stem.0.weight"], original["stem.0.weight"])
    assert not torch.equal(changed["stem.1.running_mean"], original["stem.1.running_mean"])


@pytest.mark.parametrize("encoder", ["cnn", "transformer"])
def test_adapters_at_initialisation_are_the_original_encoder(runs, fmnist_small, encoder):
    run = ul.open_run(runs[encoder])
    x = run.modality().normalize(run.modality().prepare(fmnist_small.get(np.arange(16))))
    reference = run.encoder()
    with torch.no_grad():
        want = reference.embed(x)
        for apply in (apply_svfit, apply_lora):
            enc = run.encoder()
            trainable = apply(enc, 8)
            assert torch.equal(enc.embed(x), want), apply.__name__  # SVFit: delta 0; LoRA: B = 0
            assert all(p.requires_grad for p in trainable)
            assert sum(p.requires_grad for p in enc.parameters()) == len(trainable)
    layers = adaptable_layers(reference)
    if encoder == "transformer":  # attention qkv/proj and the two MLP linears of each of 4 blocks
        assert len(layers) == 16 and layers[:4] == [
            "trunk.blocks.0.qkv",
            "trunk.blocks.0.proj",
            "trunk.blocks.0.mlp.0",
            "trunk.blocks.0.mlp.2",
        ]
    else:
        assert len(layers) == 6 and all(isinstance(reference.get_submodule(n), torch.nn.Conv2d) for n in layers)


def test_same_seed_same_predictions(fitted, runs, data):
    again = FinetuneProbe(runs["cnn"], mode="full", lr=LR["full"], **FAST).fit(*data["fit"], *data["val"])
    X = data["test"][0]
    assert np.array_equal(again.predict_proba(X), fitted["full"].predict_proba(X))
    assert again.best_epoch_ == fitted["full"].best_epoch_


@pytest.mark.slow
def test_regression_of_mean_intensity_beats_the_mean(runs, data):
    """Target: each image's mean pixel value (real, and not given to the probe)."""
    (X, _), (X_test, _) = data["fit"], data["test"]
    y, y_test = X.mean(axis=(1, 2, 3)), X_test.mean(axis=(1, 2, 3))
    probe = FinetuneProbe(runs["cnn"], mode="full", task="regression", lr=1e-3, epochs=4, batch_size=32)
    assert is_regressor(probe) and not is_classifier(probe)
    pred = probe.fit(X, y).predict(X_test)
    assert pred.shape == y_test.shape and pred.dtype == np.float64
    assert np.mean((pred - y_test) ** 2) < 0.5 * np.var(y_test)  # R² > 0.5
    assert probe.score(X_test, y_test) > 0.5
    with pytest.raises(ul.UnlabeledError, match="predict_proba is for classification"):
        probe.predict_proba(X_test)


@pytest.mark.slow
def test_tune_picks_an_lr_of_the_grid_and_an_epoch(runs, data):
    (X, y), (Xv, yv) = data["fit"], data["val"]
    params = tune(
        X[:150],
        y[:150],
        Xv,
        yv,
        run=runs["cnn"],
        mode="svfit",
        trained=True,
        task="classification",
        seed=0,
        epochs=2,
        batch_size=32,
        min_steps=0,
    )
    assert set(params) == {"lr", "epochs", "min_steps"}
    assert params["lr"] in LR_GRID["svfit"] and 1 <= params["epochs"] <= 2
    # 150 labels are 5 batches: min_steps raises 2 epochs to 20 to reach 100 steps
    probe = FinetuneProbe(runs["cnn"], mode="svfit", epochs=2, batch_size=32, max_steps=100).fit(X[:150], y[:150])
    assert probe.epochs_run_ == 20
    # the refit trains the chosen epochs (it trained the floor's 20 whatever the choice)
    refit = FinetuneProbe(runs["cnn"], mode="svfit", batch_size=32, **params).fit(X[:150], y[:150])
    assert refit.get_params()["lr"] == params["lr"] and refit.epochs_run_ == params["epochs"]


def test_errors_and_the_estimator_api(runs, data):
    X, y = data["fit"]
    probe = FinetuneProbe(runs["cnn"])
    assert is_classifier(probe) and clone(probe).get_params() == probe.get_params()
    with pytest.raises(ul.UnlabeledError, match="unknown fine-tuning mode 'prefix'"):
        FinetuneProbe(runs["cnn"], mode="prefix").fit(X, y)
    with pytest.raises(ul.UnlabeledError, match="unknown fine-tuning mode"):
        tune(X, y, X, y, run=runs["cnn"], mode="adapter", trained=True, task="classification", seed=0)
    with pytest.raises(ul.UnlabeledError, match="unknown task"):
        FinetuneProbe(runs["cnn"], task="ranking").fit(X, y)
    with pytest.raises(ul.UnlabeledError, match="at least 2 classes"):
        FinetuneProbe(runs["cnn"]).fit(X, np.zeros(len(X), int))
    with pytest.raises(ul.UnlabeledError, match=r"shape \(28, 28\) given"):
        FinetuneProbe(runs["cnn"]).fit(X[:, 0], y)
    with pytest.raises(ul.UnlabeledError, match="300 samples but 10 targets"):
        FinetuneProbe(runs["cnn"]).fit(X, y[:10])
    with pytest.raises(ul.UnlabeledError, match="rank must be at least 1"):
        FinetuneProbe(runs["cnn"], mode="lora", rank=0).fit(X, y)


def test_a_probe_fit_interrupted_leaves_the_commands_own_message(runs, data, monkeypatch):
    """A probe's fit saves no run: Ctrl-C in it said "continue with --resume", an option bench
    does not have; the command's own exit says what happened."""
    from unlabeled._console import console
    from unlabeled.bench import tuning

    def interrupted(self, x, generator, y):
        raise KeyboardInterrupt

    monkeypatch.setattr(tuning._ProbeObjective, "loss", interrupted)
    with console.capture() as said, pytest.raises(KeyboardInterrupt) as caught:
        FinetuneProbe(runs["cnn"], mode="full", lr=1e-3, **FAST).fit(*data["fit"])
    assert "--resume" not in said.get() and not getattr(caught.value, "reported", False)


def test_two_regression_labels_are_fine_tuned_with_the_default_rate(runs, data):
    """At a tiny label fraction a regression task draws two labels; the validation carve-out
    left a fit of one, which a fine-tuned regressor refuses (one target value): the bench
    failed the cell. Now nothing is chosen on it, the defaults are used."""
    from unlabeled.bench.protocol import ProbeData, fit_and_score

    (X, _), (X_test, _) = data["fit"], data["test"]
    y, y_test = X.mean(axis=(1, 2, 3)), X_test.mean(axis=(1, 2, 3))
    probe_data = ProbeData(X[:200], y[:200], X_test[:50], y_test[:50], kind="regression")
    ctx = {"run": runs["cnn"], "trained": True, "device": "cpu"}
    s = fit_and_score(probe_data, "finetune", 0.005, seed=0, context=ctx)  # 1 of 200: at least two
    assert s.n_labels == 2 and np.isfinite(s.value)


def test_a_regression_draw_of_one_target_value_fits_the_constant(runs, data):
    """A few labels of a rating scale can draw one value: the refit refused it ("needs 2
    samples with different targets") and ended the whole bench, on every rerun too."""
    X, _ = data["fit"]
    probe = FinetuneProbe(runs["cnn"], task="regression", lr=1e-2, epochs=20, batch_size=16, max_steps=60)
    pred = probe.fit(X[:16], np.full(16, 3.0)).predict(X[16:24])
    assert probe.y_std_ == 1.0 and np.all(np.abs(pred - 3.0) < 0.5), pred
