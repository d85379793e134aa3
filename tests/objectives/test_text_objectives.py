"""The language-model objectives against their papers' formulas: BERT's masking, next-token
cross-entropy, SimCSE's InfoNCE over two dropout views; each refuses what it cannot train."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.modalities import fit_modality
from unlabeled.modalities.text import MASK, PAD, SPECIAL_TOKENS
from unlabeled.models import build_encoder
from unlabeled.objectives import build_objective
from unlabeled.objectives.clm import next_token_logits, next_token_loss
from unlabeled.objectives.mlm import bert_mask
from unlabeled.objectives.simcse import info_nce


@pytest.fixture(scope="module")
def text_mod(wordnet_small):
    return fit_modality(wordnet_small, wordnet_small.indices("train"))


def test_bert_masking_chooses_15_percent_of_real_tokens_80_10_10(text_mod, wordnet_small):
    x = text_mod.prepare(wordnet_small.get(np.arange(2000)))
    g = torch.Generator().manual_seed(0)
    out, chosen = bert_mask(x, 0.15, text_mod.vocab, g)
    real = x >= len(SPECIAL_TOKENS)
    assert not (chosen & ~real).any()  # never padding, [BOS] or [EOS]
    assert abs(chosen.sum() / real.sum() - 0.15) < 0.01
    masked, kept = (out == MASK) & chosen, (out == x) & chosen
    assert abs(masked.sum() / chosen.sum() - 0.8) < 0.02
    assert abs(kept.sum() / chosen.sum() - 0.1) < 0.02  # (a random token equal to the original: rare)
    assert torch.equal(out[~chosen], x[~chosen])


def test_a_batch_that_draws_no_masked_token_still_has_a_finite_loss(text_mod, wordnet_small):
    """Three short documents at 15% can draw no position at all; the loss was a mean over none,
    NaN, the same at every retry of that step ("loss became nan", a run that never finished).
    One real token is chosen then, and a batch of ordinary draws is untouched."""
    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab)
    objective = build_objective("mlm", enc, text_mod, mask_ratio=1e-6)
    x = text_mod.prepare(wordnet_small.get(np.arange(3)))
    loss, logs = objective.loss(x, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and loss > 0 and loss.requires_grad
    out, chosen = bert_mask(x, 1e-6, text_mod.vocab, torch.Generator().manual_seed(0))
    assert chosen.sum() == 1 and x[chosen].item() >= len(SPECIAL_TOKENS)
    ordinary = [bert_mask(x, 0.5, text_mod.vocab, torch.Generator().manual_seed(1)) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(*ordinary, strict=True))
    blank = torch.full_like(x, PAD)  # no real token anywhere: nothing to predict, and no NaN
    assert objective.loss(blank, torch.Generator().manual_seed(0))[0].item() == 0.0


def test_the_next_token_loss_is_cross_entropy_over_real_next_tokens(text_mod, wordnet_small):
    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab, causal=True)
    x = text_mod.prepare(wordnet_small.get(np.arange(4)))
    logits = next_token_logits(enc, x)
    terms = [
        F.cross_entropy(logits[b, t], x[b, t + 1], reduction="sum")
        for b in range(4)
        for t in range(x.shape[1] - 1)
        if x[b, t + 1] != PAD
    ]
    torch.testing.assert_close(next_token_loss(logits, x), torch.stack(terms).mean(), rtol=1e-5, atol=1e-5)


def test_info_nce_against_its_formula():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    sim = torch.tensor([[float(F.cosine_similarity(a[i], b[j], 0)) for j in range(6)] for i in range(6)]) / 0.05
    want = -torch.stack([sim[i].log_softmax(0)[i] for i in range(6)]).mean()
    torch.testing.assert_close(info_nce(a, b, 0.05), want, rtol=1e-5, atol=1e-5)


def test_simcse_views_differ_by_dropout_and_repeat_for_the_same_step(text_mod, wordnet_small):
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab, dropout=0.1)
    obj = build_objective("simcse", enc, text_mod).train()
    x = text_mod.prepare(wordnet_small.get(np.arange(16)))
    one = obj.loss(x, torch.Generator().manual_seed(3))[0]
    assert torch.equal(one, obj.loss(x, torch.Generator().manual_seed(3))[0])
    assert not torch.equal(one, obj.loss(x, torch.Generator().manual_seed(4))[0])
    assert one > 0.01  # two dropout views of a sentence are not the same vector


def test_each_objective_refuses_what_it_cannot_train(text_mod, fmnist_small):
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab)
    with pytest.raises(UnlabeledError, match="simclr does not train on text"):
        build_objective("simclr", enc, text_mod)
    with pytest.raises(UnlabeledError, match="clm needs a causal encoder"):
        build_objective("clm", enc, text_mod)
    with pytest.raises(UnlabeledError, match="dropout"):
        build_objective("simcse", enc, text_mod)
    image = fit_modality(fmnist_small)
    with pytest.raises(UnlabeledError, match="mlm is for text"):
        build_objective("mlm", build_encoder("transformer", "tiny", image.input_shape), image)


@pytest.mark.parametrize(
    ("method", "encoder", "said"),
    [("ts2vec", None, "ts2vec does not train on text"), ("clm", "tcn", "the tcn encoder does not read text")],
)
def test_pretraining_text_with_a_series_method_or_encoder_is_refused_in_words(
    wordnet_small, tmp_path, method, encoder, said
):
    """ts2vec defaults to the tcn, whose constructor took the text's vocabulary as an unknown
    argument: the refusal was Python's TypeError about ``vocab``."""
    with pytest.raises(UnlabeledError, match=said):
        ul.pretrain(wordnet_small, tmp_path / "r", method=method, encoder=encoder, epochs=0.01)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mlm", "clm", "simcse"])
def test_pretraining_on_wordnet_lowers_the_loss_and_gives_embeddings(wordnet_small, tmp_path, method):
    run = ul.pretrain(wordnet_small, tmp_path / method, method=method, epochs=2, batch_size=64, precision="fp32")
    losses = [r["loss"] for r in run.metrics() if "loss" in r]
    assert len(losses) >= 3 and losses[-1] < losses[0]
    X = run.encode(wordnet_small)
    assert X.shape == (len(wordnet_small), run.encoder().dim) and np.isfinite(X).all()
    assert run.config["method"]["name"] == method and run.config["modality"]["name"] == "text"
