"""Provenance for exact forgetting: a classifier fine-tuned from a pretrained encoder, or an
encoder pretrained from another (``--init``), is retrained exactly only when no ancestor saw
the samples; otherwise the request is refused naming the ancestor, the ancestors are
retrained too, or the run alone is retrained and recorded as not exact."""

import numpy as np
import pytest

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.data.collection import CollectionWriter
from unlabeled.forget import forget, verify
from unlabeled.forget.lineage import forgotten_in, lineage
from unlabeled.train import checkpoint as ckpt
from unlabeled.train.finetune import finetune

PRE = {"epochs": 1, "batch_size": 64, "seed": 0, "precision": "fp32"}


@pytest.fixture(scope="module")
def parts(fmnist_small):
    """Positions: 600 train images the encoder pretrains on, 100 of them also labelled, and
    100 labelled ones the encoder never saw."""
    train = fmnist_small.indices("train")
    return {"seen": train[:600], "labelled_seen": train[:100], "unseen": train[600:700]}


@pytest.fixture(scope="module")
def pre(tmp_path_factory, fmnist_small, parts):
    return ul.pretrain(fmnist_small, tmp_path_factory.mktemp("runs") / "pre", positions=parts["seen"], **PRE)


@pytest.fixture(scope="module")
def clf(tmp_path_factory, fmnist_small, pre, parts):
    labelled = np.concatenate([parts["labelled_seen"], parts["unseen"]])
    return finetune(pre, fmnist_small, tmp_path_factory.mktemp("runs") / "clf", positions=labelled, epochs=1)


def _ids(col, positions):
    return [str(i) for i in col.ids[positions]]


def test_a_classifier_records_its_encoders_weights_hash_and_its_lineage(clf, pre):
    init = clf.config["init"]
    assert init["run"] == clf.config["source_run"] == str(pre.path.resolve())
    assert init["weights"] == ckpt.file_digest(pre.path / ckpt.MODEL_FILE)[:16]
    assert [(r.path.resolve(), how) for r, how in lineage(clf)] == [(pre.path.resolve(), "source")]


def test_retrain_refuses_naming_the_encoder_that_saw_the_samples(clf, pre, fmnist_small, parts, tmp_path):
    ids = _ids(fmnist_small, parts["labelled_seen"][:10])
    with pytest.raises(UnlabeledError, match=rf"retrain would not be exact: {pre.path}.*10 sample\(s\) with"):
        forget(clf, method="retrain", ids=ids, out=tmp_path / "no")
    assert not (tmp_path / "no" / "config.json").exists()


def test_retrain_is_exact_when_no_ancestor_saw_the_samples(clf, fmnist_small, parts, tmp_path):
    out = forget(clf, method="retrain", ids=_ids(fmnist_small, parts["unseen"][:10]), out=tmp_path / "re")
    record = out.config["forget"]
    assert record["exact"] is True and [a["saw"] for a in record["ancestors"]] == [0]
    assert out.config["source_run"] == clf.config["source_run"]  # the same encoder, untouched


def test_keep_retrains_the_classifier_alone_and_says_it_is_not_exact(clf, fmnist_small, parts, tmp_path):
    out = forget(
        clf, method="retrain", ids=_ids(fmnist_small, parts["labelled_seen"][:10]), out=tmp_path / "k", ancestors="keep"
    )
    record = out.config["forget"]
    assert record["exact"] is False and record["ancestors"][0]["saw"] == 10 and not record["ancestors"][0]["retrained"]
    assert out.config["source_run"] == clf.config["source_run"]


@pytest.mark.slow
def test_ancestors_retrain_makes_the_encoder_again_without_the_samples_bit_for_bit(
    clf, pre, fmnist_small, parts, tmp_path
):
    gone = parts["labelled_seen"][:10]
    out = forget(clf, method="retrain", ids=_ids(fmnist_small, gone), out=tmp_path / "chain", ancestors="retrain")
    new_pre = ul.open_run(out.config["source_run"])
    assert new_pre.path.parent == out.path / "ancestors" and new_pre.finished
    assert not set(_ids(fmnist_small, gone)) & set(new_pre.training_ids())
    assert len(new_pre.training_ids()) == len(parts["seen"]) - 10
    # the ancestor retrained is pretraining's own recipe on what is kept: the same weights as
    # running it by hand
    by_hand = ul.pretrain(fmnist_small, tmp_path / "by-hand", positions=np.setdiff1d(parts["seen"], gone), **PRE)
    assert ckpt.file_digest(new_pre.path / ckpt.MODEL_FILE) == ckpt.file_digest(by_hand.path / ckpt.MODEL_FILE)
    record = out.config["forget"]
    assert record["exact"] is True and record["ancestors"][0]["retrained"] is True
    assert not set(_ids(fmnist_small, gone)) & set(out.training_ids())
    table = verify(out)  # a retrain is its own reference: the table says which ancestors it retrained
    assert table["reference"] == {
        "exact": True,
        "retrained_ancestors": [str(pre.path.resolve())],
        "kept_ancestors_that_saw": [],
    }


def test_a_changed_ancestor_breaks_the_lineage(fmnist_small, parts, tmp_path):
    pre = ul.pretrain(fmnist_small, tmp_path / "pre", positions=parts["seen"][:200], epochs=0.5, batch_size=64)
    clf = finetune(pre, fmnist_small, tmp_path / "clf", positions=parts["unseen"], epochs=0.5)
    ul.pretrain(
        fmnist_small, tmp_path / "pre", positions=parts["seen"][:200], epochs=0.5, batch_size=64, seed=1, overwrite=True
    )
    with pytest.raises(UnlabeledError, match="changed since"):
        forget(clf, method="retrain", ids=_ids(fmnist_small, parts["unseen"][:5]), out=tmp_path / "x")


def test_an_approximate_method_goes_on_when_the_lineage_cannot_be_read(fmnist_small, parts, tmp_path):
    """The encoder deleted since: an approximate method still forgets from the classifier
    (recorded as not exact, with the reason); an exact one is refused."""
    import shutil

    pre = ul.pretrain(fmnist_small, tmp_path / "pre", positions=parts["seen"][:200], epochs=0.5, batch_size=64)
    clf = finetune(pre, fmnist_small, tmp_path / "clf", positions=parts["unseen"], epochs=0.5)
    shutil.rmtree(pre.path)
    ids = _ids(fmnist_small, parts["unseen"][:5])
    out = forget(clf, method="ga", ids=ids, out=tmp_path / "ga", epochs=1)
    assert out.config["forget"]["exact"] is False and "no longer a run" in out.config["forget"]["ancestors_unchecked"]
    with pytest.raises(UnlabeledError, match="no longer a run"):
        forget(clf, method="retrain", ids=ids, out=tmp_path / "re")


def test_a_run_started_from_an_approximate_forget_output_descends_from_the_run_it_was_unlearned_from(
    pre, fmnist_small, parts, tmp_path
):
    """An encoder made by an approximate method (LAF, say) from ``pre`` holds ``pre``'s weights,
    changed; its config is a copy of ``pre``'s. A classifier fine-tuned from it on the samples
    the encoder forgot, then asked to forget them exactly, was retrained as exact: the lineage
    went from the unlearned encoder to ``pre``'s own start and never looked at ``pre``."""
    import json
    import shutil

    from unlabeled.runs import write_ids

    gone = _ids(fmnist_small, parts["labelled_seen"][:10])
    unlearned = tmp_path / "laf"  # what an approximate forget request writes, without its training
    shutil.copytree(pre.path, unlearned)
    config = json.loads((unlearned / "config.json").read_text())
    config["method"] = {**config["method"], "unlearning": "laf"}
    config["forget"] = {"source": str(pre.path.resolve()), "method": "laf", "finished": True}
    (unlearned / "config.json").write_text(json.dumps(config))
    write_ids(unlearned / "training-ids.txt", [i for i in pre.training_ids() if i not in set(gone)])
    labelled = np.concatenate([parts["labelled_seen"][:10], parts["unseen"]])  # the forgotten ones learnt again
    child = finetune(ul.open_run(unlearned), fmnist_small, tmp_path / "child", positions=labelled, epochs=0.2)
    assert [(r.path.resolve(), how) for r, how in lineage(child)][:2] == [
        (unlearned.resolve(), "source"),
        (pre.path.resolve(), "unlearned"),
    ]
    with pytest.raises(UnlabeledError, match=rf"retrain would not be exact: {pre.path}"):
        forget(child, method="retrain", ids=gone, out=tmp_path / "no")
    with pytest.raises(UnlabeledError, match="cannot redo that unlearning exactly"):
        forget(child, method="retrain", ids=gone, out=tmp_path / "no", ancestors="retrain")


def test_a_copy_under_another_id_in_the_same_collection_counts_as_seen(fmnist_small, parts, tmp_path):
    """Within one collection samples were matched by position alone: an ancestor that trained on
    a copy of the sample to forget (the same bytes, another id) was said to have seen none."""
    pos = parts["seen"][:100]
    w = CollectionWriter(tmp_path / "c", "image", (1, 28, 28), "uint8", fmnist_small.classes)
    w.add(fmnist_small.get(pos), _ids(fmnist_small, pos), fmnist_small.labels[pos], ["train"] * 100)
    w.add(fmnist_small.get(pos[:1]), ["copy-of-first"], fmnist_small.labels[pos[:1]], ["train"])
    col = w.close()
    assert col.meta["exact_duplicates"] == 1
    enc = ul.pretrain(col, tmp_path / "enc", positions=np.arange(1, 101), epochs=0.1, batch_size=32)
    _, seen = forgotten_in(enc, col, np.array([0]))  # the first sample: never trained on, its copy was
    assert seen.tolist() == [100]


def test_an_ancestor_on_another_collection_is_matched_by_content(fmnist_small, parts, tmp_path):
    """The same images imported again under other ids are found in the encoder's data."""
    seen = parts["seen"][:200]
    w = CollectionWriter(tmp_path / "copy", "image", (1, 28, 28), "uint8", fmnist_small.classes)
    w.add(
        fmnist_small.get(seen),
        [f"copy-{i}" for i in range(len(seen))],
        fmnist_small.labels[seen],
        ["train"] * len(seen),
    )
    copy = w.close()
    pre = ul.pretrain(copy, tmp_path / "pre", epochs=0.5, batch_size=64)
    col, where = forgotten_in(pre, fmnist_small, np.concatenate([seen[[3, 7]], parts["unseen"][:4]]))
    assert col.path == copy.path and sorted(col.ids[where]) == ["copy-3", "copy-7"]


def test_an_encoder_continued_from_another_is_retrained_from_it(gunpoint, tmp_path):
    train = gunpoint.indices(exclude="test")
    opts = {"method": "mae", "epochs": 1, "batch_size": 8}
    first = ul.pretrain(gunpoint, tmp_path / "a", positions=train[:30], **opts)
    second = ul.pretrain(gunpoint, tmp_path / "b", positions=train[20:], init=first, **opts)
    out = forget(second, method="retrain", ids=_ids(gunpoint, train[30:33]), out=tmp_path / "re")
    assert out.config["init"]["run"] == str(first.path.resolve()) and out.config["forget"]["exact"] is True
    with pytest.raises(UnlabeledError, match=f"{first.path} \\(the --init weights\\)"):
        forget(second, method="retrain", ids=_ids(gunpoint, train[20:22]), out=tmp_path / "no")


def test_an_unknown_ancestors_policy_is_refused(clf, tmp_path):
    with pytest.raises(UnlabeledError, match="--ancestors must be one of"):
        forget(clf, method="retrain", ids=clf.training_ids()[:1], out=tmp_path / "x", ancestors="ignore")


@pytest.mark.slow
def test_verify_with_ancestors_retrain_remakes_a_reference_that_kept_them(clf, fmnist_small, parts, tmp_path):
    """Once a reference existed (made with the ancestors kept: not exact), ``verify --ancestors
    retrain`` printed the same inexact table: the flag was ignored."""
    out = forget(clf, method="salun", ids=_ids(fmnist_small, parts["labelled_seen"][:10]), out=tmp_path / "s", epochs=1)
    assert verify(out)["reference"]["exact"] is False
    again = verify(out, ancestors="retrain")["reference"]
    assert again["exact"] is True and again["retrained_ancestors"] and not again["kept_ancestors_that_saw"]
