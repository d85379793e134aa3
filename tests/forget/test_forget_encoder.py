"""Forgetting from a self-supervised encoder, without labels: LAF and the retrained
reference, verified at the level of representations."""

import hashlib

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.forget import AuditLog, forget, verify
from unlabeled.forget.methods.laf import alignment_loss, fit_vae, reconstruction_term
from unlabeled.forget.verify import linear_cka
from unlabeled.runs import encode


@pytest.fixture(scope="module")
def encoder(gunpoint, tmp_path_factory):
    return ul.pretrain(gunpoint, tmp_path_factory.mktemp("runs") / "mae", method="mae", epochs=4, batch_size=16)


@pytest.fixture(scope="module")
def laf(encoder, tmp_path_factory):
    """LAF's answer to a request for the first 10 training samples, and its verification table."""
    before = hashlib.sha256((encoder.path / "model.safetensors").read_bytes()).hexdigest()
    out = tmp_path_factory.mktemp("runs") / "laf"
    new = forget(encoder, method="laf", ids=encoder.training_ids()[:10], out=out, epochs=3)
    table = verify(new)
    assert hashlib.sha256((encoder.path / "model.safetensors").read_bytes()).hexdigest() == before  # untouched
    return new, table


def test_laf_makes_a_new_encoder_verified_against_a_retrained_one(encoder, gunpoint, laf):
    new, table = laf
    train_ids = encoder.training_ids()
    assert len(train_ids) == 50  # GunPoint's train split; the test split is never trained on
    assert new.kind == "encoder" and set(new.training_ids()) == set(train_ids[10:])
    # the encoder alone: the original and a density model of the forgotten samples were exported too
    assert {k.split(".")[0] for k in new.weights()} == {"encoder"}
    assert set(table["rows"]) == {"original", "laf", "retrain"}
    ref = ul.open_run(new.path / "reference")
    assert set(ref.training_ids()) == set(train_ids[10:]) and ref.config["forget"]["method"] == "retrain"
    for row in table["rows"].values():
        assert {"forget_knn_acc", "test_knn_acc", "mia_efficacy", "forget_cka", "retain_cka"} <= set(row)
        assert 0 <= row["mia_efficacy"] <= 1 and 0.3 < row["test_knn_acc"] <= 1
    assert table["rows"]["retrain"]["forget_cka"] == pytest.approx(1.0)
    assert table["gaps"]["average_gap"] >= 0 and table["time_ratio"] > 0
    events = [e["event"] for e in AuditLog(encoder.path).events()]
    assert "verified" in events


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of 1 - cos between two representations of each."""
    a, b = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (a, b))
    return float((1 - (a * b).sum(1)).mean())


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="LAF suppresses, it does not remove: measured here, its update moves every representation "
    "(forget and retain alike, cosine distance 0.0047 from the original's) and the forget set's away "
    "from the retrained encoder's (0.0070 -> 0.0134); BENCHMARKS.md finds the same on Fashion-MNIST",
)
def test_laf_moves_the_forget_sets_representations_toward_the_retrained_encoders(encoder, gunpoint, laf):
    """Removal, not just change: LAF's forget-set representations are closer to those of the
    encoder retrained without the forget set than the original's were, by a quarter of the
    distance at least, both per sample (cosine) and as a whole (linear CKA)."""
    new, table = laf
    ref = ul.open_run(new.path / "reference")
    forget_pos = np.sort(gunpoint.positions(encoder.training_ids()[:10]))
    z = {
        name: encode(r.encoder(), r.modality(), gunpoint, forget_pos)
        for name, r in (("original", encoder), ("laf", new), ("retrain", ref))
    }
    before, after = _cosine_distance(z["original"], z["retrain"]), _cosine_distance(z["laf"], z["retrain"])
    assert after <= 0.75 * before, (before, after)
    rows = table["rows"]
    assert 1 - rows["laf"]["forget_cka"] <= 0.75 * (1 - rows["original"]["forget_cka"]), rows


def test_encoder_errors(encoder, tmp_path):
    with pytest.raises(UnlabeledError, match="retrain or sisa or laf"):
        forget(encoder, method="npo", ids=encoder.training_ids()[:3], out=tmp_path / "x")
    with pytest.raises(UnlabeledError, match="not in the training set"):
        forget(encoder, method="laf", ids=["test-00001"], out=tmp_path / "x")
    with pytest.raises(UnlabeledError, match="every training sample"):
        forget(encoder, method="laf", ids=encoder.training_ids(), out=tmp_path / "x")


def test_sisa_encoder_retrains_only_the_shards_that_held_the_samples(gunpoint, tmp_path):
    sharded = ul.pretrain(gunpoint, tmp_path / "sisa", method="mae", epochs=2, batch_size=8, shards=2)
    shards = sharded.shards()
    assert len(shards) == 2 and sharded.finished and sharded.config["sisa"]["shards"] == 2
    ids = [s.training_ids() for s in shards]
    assert not set(ids[0]) & set(ids[1]) and sorted(ids[0] + ids[1]) == sorted(sharded.training_ids())
    assert len(sharded.training_ids()) == 50
    enc = sharded.encoder()
    x = sharded.modality().normalize(sharded.modality().prepare(gunpoint.get(np.arange(4))))
    with torch.no_grad():
        z = enc.embed(x)
        assert z.shape == (4, enc.dim) and enc.dim == 2 * shards[0].encoder().dim
        assert torch.allclose(z[:, : shards[0].encoder().dim], shards[0].encoder().embed(x))
        # each shard reads the inputs as it normalised them in training (it fitted its own
        # statistics): the run's are the first shard's, which the second was fed before
        own = shards[1].modality()
        assert own.mean != sharded.modality().mean
        mine = shards[1].encoder().embed(own.normalize(own.prepare(gunpoint.get(np.arange(4)))))
        assert torch.allclose(z[:, shards[0].encoder().dim :], mine, atol=1e-5)
    with pytest.raises(UnlabeledError, match="is a sharded \\(SISA\\) run"):  # its classifier could not load
        ul.finetune(sharded, gunpoint, tmp_path / "ft", epochs=0.1)
    assert not (tmp_path / "ft").exists()
    digest = {s.path.name: hashlib.sha256((s.path / "model.safetensors").read_bytes()).hexdigest() for s in shards}
    new = forget(sharded, method="sisa", ids=ids[1][:3], out=tmp_path / "forgot")
    assert new.config["sisa"]["retrained_shards"] == ["01"]
    after = {s.path.name: hashlib.sha256((s.path / "model.safetensors").read_bytes()).hexdigest() for s in new.shards()}
    assert after["00"] == digest["00"] and after["01"] != digest["01"]
    assert set(new.shards()[1].training_ids()) == set(ids[1][3:])
    table = verify(new)  # against the sharded recipe retrained on the retain set
    ref = ul.open_run(tmp_path / "forgot" / "reference")
    assert len(ref.shards()) == 2 and set(ref.training_ids()) == set(sharded.training_ids()) - set(ids[1][:3])
    assert set(table["rows"]) == {"original", "sisa", "retrain"}
    with pytest.raises(UnlabeledError, match="pretrain --shards"):
        forget(
            ul.pretrain(gunpoint, tmp_path / "plain", method="mae", epochs=1, batch_size=16),
            method="sisa",
            ids=ids[0][:1],
            out=tmp_path / "x",
        )


def test_laf_losses_and_cka():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(200, 16)).astype(np.float32)
    vae = fit_vae(e, epochs=30)
    t = torch.from_numpy(e)
    fitted = reconstruction_term(vae.reconstruct(t), t)
    other = torch.from_numpy(rng.normal(3, 1, size=(200, 16)).astype(np.float32))
    assert fitted < reconstruction_term(vae.reconstruct(other), other)  # the VAE knows its distribution
    same = alignment_loss(t, t, t, t)
    pushed = alignment_loss(t, t, -t, t)  # forget representations turned away from the original's
    assert pushed < same
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(e, 3 * e @ q) == pytest.approx(1.0, abs=1e-6)  # rotation and scale do not matter
    assert linear_cka(e, rng.normal(size=(200, 16))) < 0.3
    # one forgotten sample: no centred representation, no CKA (it was 0, a gap of 1 in the average)
    assert np.isnan(linear_cka(e[:1], e[:1])) and np.isnan(linear_cka(e, np.ones_like(e)))
    from unlabeled.forget.verify import ENCODER_METRICS, encoder_gaps

    row = {m: 0.5 for m in ENCODER_METRICS} | {"forget_cka": float("nan")}
    gaps = encoder_gaps(row, row)
    assert np.isnan(gaps["forget_cka_gap"]) and gaps["average_gap"] == 0.0


def test_an_unlearned_encoder_is_retrained_with_the_recipe_it_was_unlearned_from(encoder, laf, tmp_path):
    """LAF's output records LAF's settings and training; retraining it (a chained request)
    runs the original MAE recipe on what it still holds, not LAF's."""
    new, _ = laf
    again = forget(new, method="retrain", ids=new.training_ids()[:3], out=tmp_path / "again", ancestors="keep")
    assert again.config["method"] == encoder.config["method"]
    assert again.config["train"]["lr"] == encoder.config["train"]["lr"]
    assert set(again.training_ids()) == set(new.training_ids()[3:])


def test_laf_refuses_one_sample_before_the_request_is_logged(encoder, tmp_path):
    """Its density model of the forget set was fitted in batches of one: TrainConfig's error
    came after the audit log's "started" row, and after --overwrite had set the old output aside."""
    before = len(AuditLog(encoder.path).events())
    with pytest.raises(UnlabeledError, match="laf fits a model to the samples it forgets and needs 2 at least, got 1"):
        forget(encoder, method="laf", ids=[encoder.training_ids()[0]], out=tmp_path / "one")
    assert len(AuditLog(encoder.path).events()) == before and not (tmp_path / "one").exists()
