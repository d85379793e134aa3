"""Pretraining on a mixture of collections (``--mix``) with upsampling over the last steps
(``--upsample-last``): the shares of the batches, the switch, exact resume, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import unlabeled as ul
from tests.train.test_kill_resume import _kill_resume_equals_straight, _same_weights
from unlabeled.data.collection import CollectionWriter
from unlabeled.data.mixture import plan_mix
from unlabeled.train.sampling import MixSampler


def _sampler(**kw) -> MixSampler:
    pools = [np.arange(0, 1000), np.arange(1000, 1100)]  # a large and a small collection
    return MixSampler(pools, (0.9, 0.1), 32, 0, **kw)


def test_each_collection_gives_its_share_of_the_batches_then_the_last_shares():
    s = _sampler(last=0.25, last_weights=(0.5, 0.5))
    total = 400
    batches = [s.positions(t, total) for t in range(total)]
    assert all(len(b) == 32 for b in batches)
    small = np.array([(b >= 1000).mean() for b in batches])
    assert s.switch(total) == 300
    assert abs(small[:300].mean() - 0.1) < 0.02 and abs(small[300:].mean() - 0.5) < 0.03
    # within a pass over its pool a collection repeats no sample: its stream is a permutation
    large = [b[b < 1000] for b in batches]
    within = np.cumsum([len(b) for b in large]) <= 1000  # the steps inside the first pass
    first = np.concatenate([b for b, w in zip(large, within, strict=True) if w])
    assert len(first) > 900 and len(np.unique(first)) == len(first)


def test_a_batch_is_a_function_of_its_step_alone_and_ranks_never_overlap():
    straight = _sampler(last=0.2, last_weights=(0.2, 0.8))
    seen = [straight.positions(t, 500) for t in range(500)]
    fresh = _sampler(last=0.2, last_weights=(0.2, 0.8))  # a resumed run: no history
    for t in (450, 7, 399, 400, 499):
        np.testing.assert_array_equal(fresh.positions(t, 500), seen[t])
    r0, r1 = (_sampler(rank=r, world=2) for r in (0, 1))
    for t in range(15):  # the first pass over the large pool (a pass's end may meet the next's start)
        assert not set(r0.positions(t, 100)) & set(r1.positions(t, 100))


def test_mix_plans_name_the_run_collection_first_and_share_the_rest(tmp_path):
    a, b, c = (str(tmp_path / n) for n in "abc")
    plan = plan_mix(b, f"{a}=3,{b}=1", f"0.2:{c}=0.5")
    assert [p.rsplit("/", 1)[1] for p in plan.paths] == ["b", "a", "c"]
    assert plan.weights == (0.25, 0.75, 0.0)  # c joins at 0 before the last 20%
    assert plan.last_weights == pytest.approx((0.125, 0.375, 0.5))
    with pytest.raises(ul.UnlabeledError, match="not among the --mix collections"):
        plan_mix(c, f"{a}=1,{b}=1", None)
    with pytest.raises(ul.UnlabeledError, match="add up to 1.5"):
        plan_mix(a, f"{a}=1", f"0.2:{a}=0.7,{b}=0.8")
    with pytest.raises(ul.UnlabeledError, match="must be in"):
        plan_mix(a, None, f"1.2:{b}=0.5")
    with pytest.raises(ul.UnlabeledError, match="COLLECTION=WEIGHT"):
        plan_mix(a, "data-a", None)
    with pytest.raises(ul.UnlabeledError, match="finite number of 0 or more"):
        plan_mix(a, f"{a}=-1", None)
    with pytest.raises(ul.UnlabeledError, match="names .* twice"):  # the later weight replaced the first
        plan_mix(a, f"{a}=0.9,{b}=0.1,{a}=0.1", None)
    with pytest.raises(ul.UnlabeledError, match="names .* twice"):  # one folder, two spellings
        plan_mix(a, f"{a}=0.9,{b}=0.1,{tmp_path}/./a=0.1", None)


def test_mixed_parts_of_one_name_keep_their_ids_apart(tmp_path):
    """Two collections imported from files of one name (imgs.npy) gave the mixture the same
    ids twice."""
    from unlabeled.data.mixture import Mixture

    parts = []
    for d in "ab":
        w = CollectionWriter(tmp_path / d, "image", (1, 2, 2), "uint8", extra_meta={"name": "imgs"})
        w.add(np.zeros((3, 1, 2, 2), np.uint8), ["0", "1", "2"])
        parts.append(w.close())
    mixed = Mixture(parts, plan_mix(parts[0].path, f"{parts[0].path}=1,{parts[1].path}=1"))
    assert len(set(mixed.ids)) == 6 and mixed.ids[0] == "imgs~0/0"


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    """300 English fortunes as a second text collection (a "domain" to upsample)."""
    from unlabeled.data.corpora import load_fortunes

    f = load_fortunes()
    en = np.flatnonzero(np.asarray(f.labels) == f.classes.index("en"))[:300]
    w = CollectionWriter(tmp_path_factory.mktemp("data") / "fortunes-en", "text", (), "uint8", None, {})
    w.add(f.arrays[en], [f"f{i}" for i in en])
    return w.close()


def _args(wordnet, domain) -> list[str]:
    return [
        "pretrain",
        str(wordnet.path),
        "--method",
        "clm",
        "--epochs",
        "0.5",
        "--batch-size",
        "16",
        "--mix",
        f"{wordnet.path}=0.8,{domain.path}=0.2",
        "--upsample-last",
        f"0.3:{domain.path}=0.6",
    ]


def test_a_mixture_run_records_its_mixture_and_its_encoder_reads_text(wordnet_small, domain, tmp_path):
    args = _args(wordnet_small, domain)
    run = ul.pretrain(
        wordnet_small,
        tmp_path / "run",
        method="clm",
        epochs=0.5,
        batch_size=16,
        mix={wordnet_small.path: 0.8, domain.path: 0.2},
        upsample_last=(0.3, {domain.path: 0.6}),
    )
    mix = run.config["data"]["mix"]
    assert [p["name"] for p in mix["parts"]] == [wordnet_small.name, domain.name]
    assert [p["weight"] for p in mix["parts"]] == [0.8, 0.2] and mix["last"] == 0.3
    assert mix["last_weights"] == pytest.approx([0.4, 0.6])
    # the train split of both (the wordnet slice's test split left out), an epoch over both
    assert run.config["data"]["samples"] == 2000 + 300
    assert run.step == round(0.5 * (2300 // 16))
    vectors = run.encode(wordnet_small, device="cpu")  # the encoder reads either collection
    assert vectors.shape[0] == len(wordnet_small) and np.isfinite(vectors).all()
    with pytest.raises(ul.UnlabeledError, match="mixture of collections"):
        from unlabeled.forget.lineage import trained_collection

        trained_collection(run)
    # and forget itself, which said the first part "changed since" (the mixture's fingerprint)
    with pytest.raises(ul.UnlabeledError, match="mixture of collections"):
        ul.forget(run, out=tmp_path / "f", method="ga", ids=[str(wordnet_small.ids[0])])
    assert args  # the CLI form is run by the slow test below


def test_a_mixture_of_images_and_text_is_refused_in_one_line(wordnet_small, fmnist_small, tmp_path):
    cmd = [sys.executable, "-m", "unlabeled", "pretrain", str(wordnet_small.path), "--out", str(tmp_path / "r")]
    done = subprocess.run(
        [*cmd, "--mix", f"{wordnet_small.path}=1,{fmnist_small.path}=1"], capture_output=True, text=True
    )
    assert done.returncode == 2 and "mixed collections must match" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_mixture_run_killed_twice_and_resumed_ends_bit_for_bit_as_uninterrupted(wordnet_small, domain, tmp_path):
    args = _args(wordnet_small, domain)
    steps = _kill_resume_equals_straight(args, tmp_path, seed=5, resume=["--resume"])
    _same_weights(tmp_path / "straight", tmp_path / "killed")
    config = json.loads((tmp_path / "killed" / "config.json").read_text())
    assert config["data"]["mix"]["last"] == 0.3 and steps
