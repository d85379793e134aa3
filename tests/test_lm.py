"""A causal language model's uses: seeded sampling, perplexity and bits per byte on held-out
text, and the compressors it is compared with."""

from __future__ import annotations

import lzma
import math

import numpy as np
import pytest
import torch

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.lm import compressor_bits_per_byte


@pytest.fixture(scope="module")
def gpt(wordnet_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "clm"
    return ul.pretrain(wordnet_small, out, method="clm", epochs=2, batch_size=64, precision="fp32")


@pytest.mark.slow
def test_generation_is_seeded_and_continues_the_prompt(gpt):
    a = ul.generate(gpt, "a small", max_tokens=12, temperature=1.0, top_k=20, seed=1)
    assert a.startswith("a small") and len(a) > len("a small")
    assert a == ul.generate(gpt, "a small", max_tokens=12, temperature=1.0, top_k=20, seed=1)
    greedy = ul.generate(gpt, "a small", max_tokens=12, temperature=0)
    assert greedy == ul.generate(gpt, "a small", max_tokens=12, temperature=0, seed=5)  # no randomness


@pytest.mark.slow
def test_perplexity_and_bits_per_byte_of_held_out_glosses(gpt, wordnet_small):
    got = ul.perplexity(gpt, wordnet_small)
    assert got["documents"] == len(wordnet_small.indices("test"))
    # the same figure two ways: nats per token and bits per byte describe one total
    nll = math.log(got["perplexity"]) * got["tokens"]
    assert math.isclose(got["bits_per_byte"], nll / math.log(2) / got["bytes"], rel_tol=1e-9)
    assert 1 < got["perplexity"] < 8192 and got["bits_per_byte"] < 8  # better than uniform over the vocabulary
    from unlabeled._console import console

    with console.capture() as held_out:  # held out: nothing to say; the documents it trained on: said
        ul.perplexity(gpt, wordnet_small, split="test")
    with console.capture() as trained:
        ul.perplexity(gpt, wordnet_small, split="train")
    assert "not a held-out one" not in held_out.get() and "not a held-out one" in trained.get(), trained.get()


def test_documents_nll_is_the_next_token_loss_summed(wordnet_small, tmp_path):
    """The summed log-likelihood perplexity is made of: the mean next-token cross-entropy of
    the documents' windows times the tokens scored, [EOS] included, padding not (a formula:
    a model trained for a few steps serves)."""
    from unlabeled.objectives.clm import document_windows, documents_nll, next_token_logits, next_token_loss

    run = ul.pretrain(wordnet_small, tmp_path / "clm", method="clm", epochs=0.05, batch_size=16, precision="fp32")
    enc, mod = run.encoder().eval(), run.modality()
    docs = [str(t) for t in wordnet_small.get(wordnet_small.indices("test")[:5])]
    nll, tokens = documents_nll(enc, mod, docs)
    windows = [w for d in docs for w in document_windows(mod, d)]
    assert tokens == sum(len(w) - 1 for w in windows)  # every token after [BOS], the [EOS] too
    x = torch.zeros(len(windows), mod.length, dtype=torch.int64)
    for i, w in enumerate(windows):
        x[i, : len(w)] = torch.tensor(w)
    with torch.no_grad():
        mean = float(next_token_loss(next_token_logits(enc, x), x))
    assert math.isclose(nll, mean * tokens, rel_tol=1e-4)
    long = [" ".join(docs) * 20]  # one document of many windows: scored a few windows a pass
    from unlabeled.objectives import clm

    whole = documents_nll(enc, mod, long)
    clm.NLL_WINDOWS, saved = 1, clm.NLL_WINDOWS
    steps: list[float] = []  # a progress bar moves within one long document (it stood still for minutes)
    try:
        one_at_a_time = documents_nll(enc, mod, long, steps.append)
    finally:
        clm.NLL_WINDOWS = saved
    assert len(steps) == len(document_windows(mod, long[0])) and math.isclose(sum(steps), 1.0)
    assert len(document_windows(mod, long[0])) > 2 * 1 and whole[1] == one_at_a_time[1]
    assert math.isclose(whole[0], one_at_a_time[0], rel_tol=1e-5)


def test_a_collection_without_splits_is_scored_whole_only_when_asked(tmp_path):
    from unlabeled.data.collection import CollectionWriter

    texts = [f"a short line of text number {i} about a dog" for i in range(40)]
    w = CollectionWriter(tmp_path / "nosplit", "text", (), "object")
    w.add(texts, [f"d{i}" for i in range(40)])
    col = w.close()
    run = ul.pretrain(col, tmp_path / "clm", method="clm", epochs=0.2, batch_size=16, precision="fp32")
    with pytest.raises(UnlabeledError, match="has no splits, so no test split; pass --split all"):
        ul.perplexity(run, col)
    assert ul.perplexity(run, col, split="all")["documents"] == 40


def test_compressor_anchors_match_the_compressors():
    texts = ["a small short-legged smooth-coated breed of hound"] * 50 + ["the act of running"] * 20
    got = compressor_bits_per_byte(texts)
    raw = "".join(t + "\n" for t in texts).encode()
    assert got["bytes"] == len(raw)
    assert got["xz -9e"] == 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / len(raw)
    assert 0 < got["zstd -19"] < 8


def test_a_model_that_is_not_a_causal_text_model_is_refused(fmnist_small, tmp_path):
    run = ul.pretrain(fmnist_small, tmp_path / "img", epochs=0.05, batch_size=32, precision="fp32")
    with pytest.raises(UnlabeledError, match="not a text run"):
        ul.generate(run, "hello")


def test_the_byte_ngram_is_a_distribution_and_learns_its_text():
    from unlabeled.lm import ByteNGram, ngram_bits_per_byte

    text = "a small short-legged smooth-coated breed of hound\nthe act of running fast\n" * 30
    model = ByteNGram(order=4).fit(text.encode())
    for context in (b"hou", b"the", b"zzz", b"d\na"):  # seen, seen, never seen, across a line
        p = [2 ** model.log2_probs(context + bytes([w]))[-1] for w in range(256)]
        assert math.isclose(sum(p), 1.0, rel_tol=1e-9)
    assert 2 ** model.log2_probs(b"houn")[-1] > 0.9  # "houn" is always followed by "d"
    seen = ngram_bits_per_byte([text], ["a small short-legged smooth-coated breed of hound"], order=4)
    unseen = ngram_bits_per_byte([text], ["qwxv jkzq pfft vvvv"], order=4)
    assert seen < 1.5 and unseen > 6  # (worse than 8 bits is possible: the model bets on its own text)


def test_generation_never_draws_padding_mask_or_bos():
    """A [PAD] drawn (id 0) was read as padding by the next pass: the special tokens other
    than [EOS] are never drawn, even where the model scores them highest."""
    from types import SimpleNamespace

    from unlabeled.lm import continue_ids
    from unlabeled.modalities.text import BOS, MASK, PAD

    class Fake(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.token_embed = torch.nn.Embedding(8, 2)
            with torch.no_grad():
                self.token_embed.weight.zero_()
                self.token_embed.weight[[PAD, MASK, BOS], 0] = 10.0  # the model's favourites
                self.token_embed.weight[5, 0] = 1.0

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.ones(*ids.shape, 2)

    gen = torch.Generator().manual_seed(0)
    assert continue_ids(Fake(), SimpleNamespace(length=16), [BOS], 3) == [5, 5, 5]
    drawn = continue_ids(Fake(), SimpleNamespace(length=16), [BOS], 12, temperature=5.0, generator=gen)
    assert not {PAD, MASK, BOS} & set(drawn)


def test_the_byte_ngram_scores_texts_shorter_than_its_order():
    """A test or training text shorter than the order made numpy allocate a negative length."""
    from unlabeled.lm import ngram_bits_per_byte

    assert ngram_bits_per_byte(["hello world"] * 3, ["hi"]) == 8.0  # "hi\n": every byte before the order, 8 bits
    assert 0 < ngram_bits_per_byte(["ab"], ["hello there world"]) < 9
    with pytest.raises(UnlabeledError, match="no test text"):
        ngram_bits_per_byte(["hello"], [])


def test_generate_reads_a_long_prompt_from_its_end_and_refuses_bad_settings(gpt, monkeypatch):
    """A prompt longer than the context was cut to its first tokens, leaving no room: the
    prompt came back unchanged. It is read from its end now; a non-finite temperature, a
    non-text prompt and a fractional top-k are one-line errors, not torch's."""
    from unlabeled.lm import _fit_prompt

    mod = gpt.modality()
    ids = list(range(10, 10 + 3 * mod.length))
    kept = _fit_prompt(mod, ids, 5)
    assert kept == ids[-len(kept) :] and len(kept) + 5 == mod.length - 1
    assert _fit_prompt(mod, ids[:3], 5) == ids[:3]
    long = "a small dog " * mod.length
    seen = []
    import unlabeled.lm as lm_module

    real = lm_module.continue_ids
    spy = lambda e, m, ids, *a, **k: seen.append(ids) or real(e, m, ids, *a, **k)  # noqa: E731
    monkeypatch.setattr(lm_module, "continue_ids", spy)
    ul.generate(gpt, long, max_tokens=5, temperature=0)
    prompt_ids = mod.tokenizer.encode(long, add_special_tokens=False).ids
    assert seen[0][1:] == prompt_ids[-(len(seen[0]) - 1) :] and len(seen[0]) + 5 == mod.length
    for bad in ({"temperature": float("nan")}, {"temperature": float("inf")}, {"top_k": 1.5}, {"max_tokens": -1}):
        with pytest.raises(UnlabeledError, match="must be"):
            ul.generate(gpt, "a small", **bad)
    with pytest.raises(UnlabeledError, match="prompt must be text"):
        ul.generate(gpt, None)
    for bad in (0, -1):
        with pytest.raises(UnlabeledError, match="--batch-size"):
            ul.perplexity(gpt, "unused", batch_size=bad)


def test_finetune_with_the_clm_objective_trains_the_language_model_further(wordnet_small, tmp_path, cli):
    """``finetune RUN --objective clm``, the issue's command for TOFU's fine-tuning: the causal
    model trained further on the task's text from every one of RUN's weights; the options that
    choose labels, a missing RUN and an unknown objective are one-line errors."""
    base = ul.pretrain(wordnet_small, tmp_path / "lm", method="clm", epochs=0.05, batch_size=16, precision="fp32")
    args = ["finetune", base.path, "--task", wordnet_small.path, "--objective", "clm", "--epochs", "0.05"]
    code, lines = cli(*args, "--batch-size", "16", "--precision", "fp32", "--size", "small", "--out", tmp_path / "ft")
    assert code == 0, lines
    run = ul.open_run(tmp_path / "ft")
    assert run.config["method"]["name"] == "clm" and run.kind == "encoder"
    assert any(str(base.path) in line and "every weight" in line for line in lines), lines
    # the model is RUN's own: an asked-for size was dropped without a word
    assert any("--size small ignored" in line for line in lines), lines
    assert run.config["encoder"]["size"] == base.config["encoder"]["size"]
    assert not torch.equal(run.weights("encoder")["pos"], base.weights("encoder")["pos"])  # trained on
    for extra, said in (
        (["--fraction", "0.1"], "--fraction chooses labelled samples"),
        (["--shards", "2"], "--shards trains one classifier per shard"),
        (["--objective", "bogus"], "must be classify or clm"),
    ):
        code, lines = cli(*args, *extra, "--out", tmp_path / "x")
        assert code == 2 and len(lines) == 1 and said in lines[0], lines
    code, lines = cli(*args[:1], *args[2:], "--out", tmp_path / "x")
    assert code == 2 and "give the clm run to start from" in lines[0], lines
    mlm = ul.pretrain(wordnet_small, tmp_path / "mlm", method="mlm", epochs=0.02, batch_size=16, precision="fp32")
    code, lines = cli(args[0], mlm.path, *args[2:], "--out", tmp_path / "x")
    assert code == 2 and len(lines) == 1 and "is a mlm run (pretrain one with --method clm)" in lines[0], lines


def test_finetune_with_the_clm_objective_fits_its_batch_to_a_small_corpus(wordnet_small, tmp_path):
    """Without --batch-size, finetune's 128 was passed on as asked for: a corpus of fewer
    documents was refused ("lower --batch-size") where pretrain fits the batch itself."""
    from unlabeled.data.collection import derive_collection

    base = ul.pretrain(wordnet_small, tmp_path / "lm", method="clm", epochs=0.02, batch_size=16, precision="fp32")
    train = wordnet_small.indices(exclude="test")
    small = derive_collection(
        wordnet_small,
        np.concatenate([train[:60], wordnet_small.indices("test")[:10]]),
        tmp_path / "small",
        {"name": "small"},
    )
    run = ul.finetune(base, small, tmp_path / "ft", objective="clm", epochs=0.5, precision="fp32")
    assert run.config["train"]["batch_size"] < 60 and run.step > 0


def test_a_temperature_too_small_for_the_scores_samples_as_its_limit_the_most_likely_token(gpt):
    """Scores over 1e-45 overflow float32 (and 1e-300 is 0 there): softmax gave NaN and
    ``torch.multinomial`` a traceback. The limit of sampling as the temperature falls is 0's."""
    greedy = ul.generate(gpt, "a small", max_tokens=6, temperature=0)
    for tiny in (1e-45, 1e-300):
        assert ul.generate(gpt, "a small", max_tokens=6, temperature=tiny, top_k=0, seed=3) == greedy


def test_shards_on_text_from_scratch_are_refused_before_anything_is_written(wordnet_small, tmp_path):
    """Each shard fitted its own tokenizer, and the ensemble read a document with the first's."""
    with pytest.raises(ul.UnlabeledError, match="--shards on text needs a pretrained text run"):
        ul.pretrain(wordnet_small, tmp_path / "p", method="mlm", epochs=0.1, shards=2)
    with pytest.raises(ul.UnlabeledError, match="--shards on text needs a pretrained text run"):
        ul.finetune(None, wordnet_small, tmp_path / "f", epochs=0.1, shards=2)
    assert not (tmp_path / "p").exists() and not (tmp_path / "f").exists()
