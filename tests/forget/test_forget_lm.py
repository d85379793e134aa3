"""Forgetting in causal language models, on a small fictitious-author benchmark (make-authors):
a group of authors forgotten by each method raises the forget documents' loss more than the
retained ones', the result is a language model like any other, and bad requests are refused."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled.forget.methods.lm import sequence_logp
from unlabeled.forget.methods.ssd import dampen
from unlabeled.train import checkpoint as ckpt


@pytest.fixture(scope="module")
def authors(tmp_path_factory):
    return ul.make_authors(tmp_path_factory.mktemp("data") / "authors", authors=12, seed=1)


@pytest.fixture(scope="module")
def lm(authors, tmp_path_factory):
    """A tiny causal LM trained on the authors' training documents (8 passes)."""
    out = tmp_path_factory.mktemp("runs") / "lm"
    return ul.pretrain(authors, out, method="clm", epochs=8, batch_size=16, lr=2e-3, precision="fp32")


def _nll(run: ul.Run, col: ul.Collection, pos: np.ndarray) -> float:
    """Mean per-token loss of the documents at ``pos``."""
    mod, enc = run.modality(), run.encoder().eval()
    with torch.no_grad():
        logp, n = sequence_logp(enc, mod.prepare(col.get(pos)))
    return float(-logp.sum() / n.sum())


SLOW = pytest.mark.slow


SLOW_METHODS = ("ga", "graddiff", "simnpo", "rmu", "whp", "eco")


@pytest.mark.parametrize("method", ["npo", "ssd", *(pytest.param(m, marks=SLOW) for m in SLOW_METHODS)])
def test_forgetting_an_author_raises_their_loss_more_than_the_others(authors, lm, tmp_path, method):
    forget = (authors.path / "forget10.txt").read_text().split()  # one author of 12
    train = authors.indices("train")
    gone = train[np.isin(authors.column("author")[train], forget)]
    kept = np.setdiff1d(train, gone)
    out = ul.forget(lm, out=tmp_path / method, method=method, group="author", values=forget, epochs=4)
    rise_forget = _nll(out, authors, gone) - _nll(lm, authors, gone)
    rise_kept = _nll(out, authors, kept) - _nll(lm, authors, kept)
    assert rise_forget > 0 and rise_forget > 2 * rise_kept, (rise_forget, rise_kept)
    assert out.config["forget"]["forgotten"] == len(gone) == 20
    assert out.config["method"]["name"] == "clm" and out.config["method"]["unlearning"] == method
    assert ul.perplexity(out, authors)["bits_per_byte"] > 0  # still a language model
    # nothing left in the run that saw the forgotten text more than the source did: WHP's
    # reinforced model and its forget documents, the state's copies of other models
    assert not (out.path / "reinforced").exists() and not (out.path / ".forget-documents").exists()
    if (out.path / "state.pt").exists():
        assert "model" not in ckpt.load_state(out.path / "state.pt")


def test_forget_options_set_the_objective_and_what_it_does_not_take_is_refused(authors, lm, tmp_path):
    forget = (authors.path / "forget10.txt").read_text().split()
    ask = {"group": "author", "values": forget, "epochs": 1}
    with pytest.raises(ul.UnlabeledError, match="npo takes --option beta, retain_weight; got temperature"):
        ul.forget(lm, out=tmp_path / "a", method="npo", options={"temperature": 1.0}, **ask)
    with pytest.raises(ul.UnlabeledError, match="ga takes no --option; got retain_weight"):
        ul.forget(lm, out=tmp_path / "b", method="ga", options={"retain_weight": 2.0}, **ask)
    with pytest.raises(ul.UnlabeledError, match="--option beta must be a number"):
        ul.forget(lm, out=tmp_path / "c", method="npo", options={"beta": "high"}, **ask)
    assert not any((tmp_path / d).exists() for d in "abc")  # refused before anything is written
    out = ul.forget(lm, out=tmp_path / "d", method="npo", options={"beta": 0.5, "retain_weight": 0}, **ask)
    assert (out.config["method"]["beta"], out.config["method"]["retain_weight"]) == (0.5, 0.0)
    assert out.config["forget"]["options"] == {"beta": 0.5, "retain_weight": 0.0}
    logged = [json.loads(line) for line in (out.path / "metrics.jsonl").read_text().splitlines()]
    assert logged and not any("retain_nll" in row for row in logged)  # the retain term is off
    kept = ul.forget(lm, out=tmp_path / "e", method="npo", **ask)
    assert any("retain_nll" in json.loads(line) for line in (kept.path / "metrics.jsonl").read_text().splitlines())


@pytest.mark.slow
def test_a_language_model_is_refused_what_does_not_apply_in_one_line(authors, lm, tmp_path):
    with pytest.raises(ul.UnlabeledError, match="not in"):
        ul.forget(lm, out=tmp_path / "a", group="author", values=["author-999"])
    with pytest.raises(ul.UnlabeledError, match="a language model forgets with"):
        ul.forget(lm, out=tmp_path / "b", method="salun", group="author", values=["author-001"])
    values = tmp_path / "values.txt"
    values.write_text("author-001\n")
    cmd = [sys.executable, "-m", "unlabeled", "forget", str(lm.path), "--out", str(tmp_path / "c")]
    both = subprocess.run(
        [*cmd, "--group", "author", "--values", str(values), "--class", "x"], capture_output=True, text=True
    )
    assert both.returncode == 2 and "one way" in both.stderr and "Traceback" not in both.stderr
    done = subprocess.run(
        [
            *cmd,
            "--group",
            "author",
            "--values",
            str(values),
            "--method",
            "npo",
            "--epochs",
            "1",
            "--option",
            "beta=0.3",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert ul.open_run(tmp_path / "c").config["forget"]["group"] == {"column": "author", "values": ["author-001"]}
    assert ul.open_run(tmp_path / "c").config["method"]["beta"] == 0.3
    verified = subprocess.run([*cmd[:4], "--verify", str(tmp_path / "c")], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    shown = verified.stdout + verified.stderr
    assert "forget_quality" in shown and "average gap" in shown


@pytest.mark.slow
def test_verify_scores_a_language_model_as_tofu_does_against_retraining(authors, lm, tmp_path):
    forget = (authors.path / "forget10.txt").read_text().split()
    out = ul.forget(lm, out=tmp_path / "npo", method="npo", group="author", values=forget, epochs=4)
    table = ul.verify(out)
    rows = table["rows"]
    assert list(rows) == ["original", "npo", "retrain"]
    assert rows["retrain"]["forget_quality"] == 1.0  # its own truth ratios
    # the original read the forgotten authors: it finds their true answers likelier than a
    # model that never did, and the unlearned model less likely than the original
    assert rows["original"]["forget_probability"] > rows["retrain"]["forget_probability"]
    assert rows["npo"]["forget_probability"] < rows["original"]["forget_probability"]
    assert 0 <= rows["npo"]["forget_quality"] <= 1 and 0 <= rows["npo"]["utility"] <= 1
    assert set(table["gaps"]) >= {"forget_probability_gap", "utility_gap", "mia_loss_gap", "average_gap"}
    # held-out general text: the original's row is its perplexity on general.jsonl's glosses
    # (this small model read only the authors: far above the vocabulary's size), out of the average
    from unlabeled.objectives.clm import documents_nll

    docs = [json.loads(line)["text"] for line in (authors.path / "general.jsonl").read_text().splitlines()[:200]]
    nll, tokens = documents_nll(ul.open_run(lm).encoder().eval(), ul.open_run(lm).modality(), docs)
    assert rows["original"]["general_perplexity"] == pytest.approx(math.exp(nll / tokens), rel=1e-4)
    assert all(np.isfinite(r["general_perplexity"]) and r["general_perplexity"] > 1 for r in rows.values())
    assert "general_perplexity_gap" not in table["gaps"]
    # membership: the original tells the forgotten author's documents from never-read authors'
    # better than the model that never read either
    for mia in ("mia_loss", "mia_zlib", "mia_min_k"):
        assert rows["original"][mia] > rows["retrain"][mia] and rows["original"][mia] > 0.6, (mia, rows)
    # relearning half the facts: the original still answers the other half far better than the
    # model that never read them (the recovery scale's ends: 1 and 0)
    assert rows["original"]["relearn_probability"] > 2 * rows["retrain"]["relearn_probability"], rows
    assert rows["retrain"]["relearn_recovery"] == 0.0 and rows["original"]["relearn_recovery"] == 1.0
    assert (out.path / "relearn" / "npo" / "config.json").exists()
    # the request is in the original's audit log like any other: started, finished, verified
    from unlabeled.forget import AuditLog

    log = AuditLog(lm.path).events()
    request = next(e["request"] for e in log if e["output"] == str(out.path.resolve()))
    assert [e["event"] for e in log if e["request"] == request] == ["started", "finished", "verified"]


def test_a_language_model_forgets_with_ssd_by_default_and_records_its_settings(authors, lm, tmp_path):
    forget = (authors.path / "forget10.txt").read_text().split()
    out = ul.forget(lm, out=tmp_path / "default", group="author", values=forget)
    method = out.config["method"]
    assert method["unlearning"] == "ssd" and (method["alpha"], method["dampening"]) == (12.5, 1.0)
    assert 0 < method["dampened"] < sum(p.numel() for p in lm.encoder().parameters())
    assert out.config["forget"]["method"] == "ssd"
    fewer = ul.forget(lm, out=tmp_path / "fewer", group="author", values=forget, options={"retained": 5})
    assert fewer.config["method"]["retained"] == 5
    for bad, why in (({"retained": 0.5}, "retained must be a whole number"), ({"alpha": 0}, "alpha must be positive")):
        with pytest.raises(ul.UnlabeledError, match=why):
            ul.forget(lm, out=tmp_path / "bad", group="author", values=forget, options=bad)
    assert not (tmp_path / "bad").exists()  # refused before anything is written


def test_ssd_repair_trains_the_dampened_model_on_the_retained_documents_alone(authors, lm, tmp_path):
    """``--option repair=E``: the same dampening, then E passes of retain-only descent, which
    lowers the retained documents' loss below the dampened model's."""
    forget = (authors.path / "forget10.txt").read_text().split()
    train = authors.indices("train")
    kept = train[~np.isin(authors.column("author")[train], forget)]
    ask = {"group": "author", "values": forget}
    plain = ul.forget(lm, out=tmp_path / "plain", **ask)
    fixed = ul.forget(lm, out=tmp_path / "fixed", options={"repair": 3}, lr=1e-3, **ask)
    method = fixed.config["method"]
    assert (
        method["unlearning"] == "ssd"
        and method["repair"] == 3
        and method["dampened"] == plain.config["method"]["dampened"]
    )
    assert fixed.config["train"]["lr"] == 1e-3 and fixed.step == 3  # 3 passes over 20 documents in batches of 16
    logged = [json.loads(line) for line in (fixed.path / "metrics.jsonl").read_text().splitlines()]
    assert logged and all("retain_nll" in row for row in logged)
    assert _nll(fixed, authors, kept) < _nll(plain, authors, kept)
    with pytest.raises(ul.UnlabeledError, match="repair must be 0 or more"):
        ul.forget(lm, out=tmp_path / "bad", options={"repair": -1}, **ask)


def test_ssd_dampens_exactly_the_weights_far_more_important_to_the_forget_set():
    layer = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    forget = [torch.tensor([[10.0, 1.0], [50.0, 0.0]])]
    retain = [torch.tensor([[1.0, 1.0], [2.0, 0.0]])]
    changed, total = dampen(layer, forget, retain, alpha=5.0, dampening=1.0)
    # selected: 10 > 5 * 1 (scaled 1/10) and 50 > 5 * 2 (scaled 2/50); 1 > 5 and 0 > 0 are not
    assert (changed, total) == (2, 4)
    assert torch.allclose(layer.weight, torch.tensor([[0.1, 2.0], [3.0 * 2 / 50, 4.0]]))
    dampen(layer, [torch.full((2, 2), 100.0)], [torch.full((2, 2), 1.0)], alpha=5.0, dampening=1000.0)
    assert torch.allclose(layer.weight, torch.tensor([[0.1, 2.0], [0.12, 4.0]]))  # a scale above 1 is 1


def test_truth_ratio_and_rouge_follow_their_formulas():
    from unlabeled.forget.lm_metrics import normalised, rouge_l_recall, utility

    assert rouge_l_recall("the cat sat on a mat", "the cat sat on the mat") == pytest.approx(5 / 6)
    assert rouge_l_recall("", "a b") == 0.0 and rouge_l_recall("a b", "a b") == 1.0
    assert normalised(np.log([0.25 * 0.25]), np.array([2]))[0] == pytest.approx(0.25)
    parts = [{"probability": 0.5, "rouge": 0.5, "ratios": np.array([0.5])}]
    assert utility(parts) == pytest.approx(0.5)  # the harmonic mean of 0.5, 0.5 and 1 - 0.5
    parts = [{"probability": 0.5, "rouge": 0.5, "ratios": np.array([0.0, 2.0])}]  # max(0, 1 - R): 1 and 0
    assert utility(parts) == pytest.approx(3 / (2 + 2 + 2))


def test_answer_targets_score_the_answer_and_its_eos_alone(authors):
    from unlabeled.data.authors import ANSWER_MARKER
    from unlabeled.forget.methods.lm import answer_targets
    from unlabeled.modalities.text import EOS, PAD, TextModality

    mod = TextModality.fit(authors, vocab=600)
    marker = torch.tensor(mod.tokenizer.encode(ANSWER_MARKER, add_special_tokens=False).ids)
    docs = authors.get(np.arange(3))
    x = mod.prepare(np.array([*docs, "no question here"], dtype=object))
    t = answer_targets(x, marker)
    for row, doc in zip(t[:3], docs, strict=True):
        answer = str(doc).split(ANSWER_MARKER)[1]  # " Ann was born in ..."
        scored = row[row != PAD].tolist()
        assert scored == [*mod.tokenizer.encode(answer, add_special_tokens=False).ids, EOS]
    assert torch.equal(t[3], x[3, 1:])  # no marker: every token scored


@pytest.mark.slow
def test_eco_keeps_the_weights_and_guards_only_the_forgotten_prompts(authors, lm, tmp_path):
    forget = (authors.path / "forget10.txt").read_text().split()
    out = ul.forget(lm, out=tmp_path / "eco", method="eco", group="author", values=forget)
    mine, theirs = out.weights("encoder"), lm.weights("encoder")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    guard = out.encoder()
    train = authors.indices("train")
    names = authors.column("author")[train]
    gone, kept = train[np.isin(names, forget)], train[~np.isin(names, forget)][:200]
    mod = out.modality()
    flagged = lambda pos: guard.flagged(x := mod.prepare(authors.get(pos)), guard.prompt(x)).float().mean()  # noqa: E731
    assert flagged(gone) > 0.9 and flagged(kept) < 0.05
    test = authors.indices("test")  # the third phrasing, never seen by the classifier
    assert flagged(test[np.isin(authors.column("author")[test], forget)]) > 0.5
    config = out.path / "config.json"
    import json

    edited = json.loads(config.read_text())
    from unlabeled.train import checkpoint as ckpt

    weights = out.weights()
    weights["eco.weight"] = weights["eco.weight"][:10]
    ckpt.save_weights(out.path / ckpt.MODEL_FILE, weights, {"step": "1"})
    config.write_text(json.dumps(edited))
    with pytest.raises(ul.UnlabeledError, match="built for a vocabulary of 10 tokens"):
        ul.open_run(out.path).encoder()


def test_an_answer_after_a_prompt_longer_than_the_context_is_still_scored(lm):
    from unlabeled.forget.lm_metrics import answer_token_logprobs, membership_scores

    enc, mod = lm.encoder().eval(), lm.modality()
    long = "Question: " + " ".join(["where was the author born"] * mod.length) + "?\nAnswer:"
    short = "Question: where was the author born?\nAnswer:"
    answer = "in a small town by the sea"
    n = len(mod.tokenizer.encode(" " + answer, add_special_tokens=False).ids) + 1  # and [EOS]
    cut, whole = answer_token_logprobs(enc, mod, [long, short], [answer, answer])
    assert len(cut) == len(whole) == n and np.isfinite(cut).all()  # the prompt gave up its start
    rows = [{"question": long[len("Question: ") : -len("\nAnswer:")], "answer": answer}]
    assert all(np.isfinite(v).all() for v in membership_scores(enc, mod, rows).values())


def test_a_request_refused_for_its_settings_or_its_source_is_never_logged(authors, lm, tmp_path):
    """A negative seed, a device this machine lacks or NPO's beta 0 (a ZeroDivisionError) were
    logged as started requests before they failed, for ever "incomplete" in an append-only log;
    a forget from a half-finished forget wrote a log into it (which then refused the rerun
    that would have finished it); a forget from an ECO result dropped its guard, undoing the
    first request. Each is now refused before anything is logged or written."""
    import json
    import shutil

    from unlabeled.forget.audit import AuditLog
    from unlabeled.runs import AUDIT_FILE

    before = len(AuditLog(lm.path).events()) if (lm.path / AUDIT_FILE).exists() else 0
    ask = {"group": "author", "values": ["author-001"]}
    bad = [
        ({"seed": -1}, "seed must be a whole number from 0"),
        ({"method": "npo", "options": {"beta": 0}}, "beta must be positive"),
        ({"method": "simnpo", "options": {"retain_weight": -1}}, "retain_weight must be 0 or more"),
    ]
    if not torch.cuda.is_available():
        bad.append(({"device": "cuda"}, "no CUDA GPU"))
    for i, (kw, message) in enumerate(bad):
        with pytest.raises(ul.UnlabeledError, match=message):
            ul.forget(lm, out=tmp_path / f"o{i}", **ask, **kw)
        assert not (tmp_path / f"o{i}").exists()
    after = len(AuditLog(lm.path).events()) if (lm.path / AUDIT_FILE).exists() else 0
    assert after == before
    for name, record, message in (
        ("half", {"forget": {"method": "npo"}}, "did not finish"),
        ("eco", {"eco": {"sigma": 1.0}}, "is an ECO result"),
    ):
        src = tmp_path / name
        shutil.copytree(lm.path, src, ignore=shutil.ignore_patterns(AUDIT_FILE))
        config = json.loads((src / "config.json").read_text())
        (src / "config.json").write_text(json.dumps({**config, **record}))
        with pytest.raises(ul.UnlabeledError, match=message):
            ul.forget(src, out=tmp_path / f"from-{name}", **ask)
        assert not (src / AUDIT_FILE).exists() and not (tmp_path / f"from-{name}").exists()


def test_the_verification_table_keeps_its_columns_apart(monkeypatch):
    """Names as wide as the 16-character columns ran together ("forget_rougeforget_truth_ratio")."""
    from unlabeled._console import console
    from unlabeled.cli import print_verification
    from unlabeled.forget.verification import verify_metrics

    metrics = verify_metrics(language_model=True)
    row = {m: 0.5 for m in metrics}
    table = {
        "request": "r",
        "method": "ssd",
        "forgotten": 1,
        "reference": {},
        "rows": {"original": row, "ssd": row},
        "gaps": {"average_gap": 0.1},
        "seconds": 1.0,
        "retrain_seconds": 10.0,
        "time_ratio": 0.1,
    }
    monkeypatch.setattr("unlabeled.cli.reference_line", lambda ref: "reference")
    with console.capture() as said:  # whatever stream the console holds
        print_verification(table)
    header = next(line for line in said.get().splitlines() if line.startswith("model"))
    assert header.split() == ["model", *metrics]


@pytest.mark.parametrize(("original", "said"), [(0.2, "undefined (nan)"), (0.31, "mostly noise"), (0.9, None)])
def test_relearn_recovery_says_when_the_original_and_retraining_cannot_be_told_apart(
    monkeypatch, tmp_path, original, said
):
    """recovery divides by P(original) - P(retrain): with the original at or below the retrained
    model every value is nan, and close above it the values are said to be noise (a 10-author
    benchmark of tiny models printed -6.7 without a word)."""
    from unlabeled._console import console
    from unlabeled.forget import relearn
    from unlabeled.train import pretrain as pretraining

    probability = {"original": original, "ssd": 0.1, "retrain": 0.3}

    class Relearned:
        def __init__(self, out):
            self.name = Path(out).name

        def encoder(self):
            return self

        def eval(self):
            return self

        def modality(self):
            return None

    monkeypatch.setattr(relearn, "split_facts", lambda task, forget: (np.arange(2), np.arange(2, 4)))
    monkeypatch.setattr(relearn, "derive_collection", lambda *a, **k: None)
    monkeypatch.setattr(relearn, "qa_rows", lambda task, asked: None)
    monkeypatch.setattr(pretraining, "pretrain", lambda sub, out, **k: Relearned(out))
    monkeypatch.setattr(relearn, "answer_probability", lambda enc, mod, rows: np.array([probability[enc.name]]))
    runs = {name: type("R", (), {"config": {"train": {"lr": 1e-3}}})() for name in probability}
    with console.capture() as c:
        got = relearn.relearning(runs, None, np.arange(4), tmp_path)
    recovery = {name: row["relearn_recovery"] for name, row in got.items()}
    if said == "undefined (nan)":
        assert all(np.isnan(v) for v in recovery.values()), recovery
    else:
        assert recovery["retrain"] == 0.0 and recovery["original"] == 1.0
    assert (said in c.get()) if said else not c.get(), c.get()


def test_truth_ratios_take_each_questions_own_perturbed_answers_and_long_prompts_keep_their_end(authors, monkeypatch):
    """Questions with two and three perturbed answers were reshaped by the first's count (a
    ValueError, or ratios of the wrong answers); a prompt as long as the context was cut to
    its first tokens, leaving no room to answer (ROUGE 0 whatever the model knew)."""
    from unlabeled.forget.lm_metrics import answer_logprob, greedy_answer, normalised, truth_ratios
    from unlabeled.modalities.text import BOS, TextModality
    from unlabeled.models import build_encoder

    mod = TextModality.fit(authors, vocab=600)
    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", mod.input_shape, vocab=mod.vocab, causal=True).eval()
    rows = [
        {"question": "Where was Ann born?", "paraphrase": "in Oslo", "perturbed": ["in Rome", "in Lima"]},
        {"question": "What does Bo write?", "paraphrase": "poems", "perturbed": ["plays", "songs", "essays"]},
    ]
    with torch.no_grad():
        got = truth_ratios(enc, mod, rows)
        for r, ratio in zip(rows, got, strict=True):
            prompt = f"Question: {r['question']}\nAnswer:"
            wrong = normalised(*answer_logprob(enc, mod, [prompt] * len(r["perturbed"]), r["perturbed"])).mean()
            right = normalised(*answer_logprob(enc, mod, [prompt], [r["paraphrase"]]))[0]
            assert ratio == pytest.approx(wrong / right, rel=1e-5)
    import unlabeled.lm

    seen = []
    monkeypatch.setattr(unlabeled.lm, "continue_ids", lambda e, m, ids, n: seen.append(ids) or [])
    end = "Question: Where was Ann born?\nAnswer:"
    greedy_answer(enc, mod, "word " * (2 * mod.length) + end, max_tokens=5)
    tail = mod.tokenizer.encode(end, add_special_tokens=False).ids
    assert seen[0][0] == BOS and seen[0][-len(tail) :] == tail and len(seen[0]) == mod.length - 5


def test_ecos_corruption_of_a_prompt_is_the_same_in_any_batch(authors):
    """The noise was one batch-wide draw scaled by the batch's embeddings: a question's
    corrupted prompt, so its scores, changed with the questions beside it."""
    from unlabeled.data.authors import ANSWER_MARKER
    from unlabeled.modalities.text import PAD, TextModality
    from unlabeled.models import build_encoder
    from unlabeled.models.eco import CorruptedPrompts

    mod = TextModality.fit(authors, vocab=600)
    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", mod.input_shape, vocab=mod.vocab, causal=True).eval()
    marker = torch.tensor(mod.tokenizer.encode(ANSWER_MARKER, add_special_tokens=False).ids)
    every = {"weight": torch.zeros(mod.vocab), "bias": torch.tensor(1.0), "marker": marker}  # flags every prompt
    guard = CorruptedPrompts(enc, every, sigma=1.0).eval()
    x = mod.prepare(authors.get(np.arange(4)))
    with torch.no_grad():
        alone, batch, clean = guard(x[:1]), guard(x), enc(x[:1])
    real = x[0] != PAD
    assert torch.allclose(alone[0][real], batch[0][real], atol=1e-5)
    assert not torch.allclose(alone[0][real], clean[0][real], atol=1e-3)  # corrupted all the same
