"""Continued (domain-adaptive) pretraining of a text model on another corpus with ``--init``:
the tokenizer the weights were trained with is kept, and another vocabulary is refused."""

from __future__ import annotations

import pytest

import unlabeled as ul
from unlabeled import UnlabeledError
from unlabeled.data.collection import CollectionWriter


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory):
    """A corpus of another domain: made-up dictionary entries with words WordNet lacks."""
    texts = [f"Zorblax {i}, n. a quibbling fellow of the {i % 7}th guild; also, a frumious snark." for i in range(300)]
    w = CollectionWriter(tmp_path_factory.mktemp("data") / "other", "text", (), "object")
    w.add(texts, [f"d{i}" for i in range(300)], splits=["train"] * 250 + ["test"] * 50)
    return w.close()


@pytest.mark.slow
def test_continued_pretraining_keeps_the_tokenizer_and_refuses_another_vocabulary(
    wordnet_small, other_corpus, tmp_path
):
    gpt = ul.pretrain(wordnet_small, tmp_path / "gpt", method="clm", epochs=1, batch_size=64, precision="fp32")
    more = ul.pretrain(other_corpus, tmp_path / "more", method="clm", init=gpt, epochs=1, batch_size=32)
    assert more.config["init"]["loaded"] == "every weight"
    # a tokenizer fitted anew on the other corpus would give the embedding rows other meanings
    assert more.config["modality"]["tokenizer"] == gpt.config["modality"]["tokenizer"]
    assert more.config["modality"]["length"] == gpt.config["modality"]["length"]
    with pytest.raises(UnlabeledError, match="8192-entry vocabulary"):
        ul.pretrain(other_corpus, tmp_path / "v", method="clm", init=gpt, epochs=1, encoder_options={"vocab": 4096})
    # a new run may choose its vocabulary
    small_vocab = ul.pretrain(other_corpus, tmp_path / "v2", method="mlm", epochs=0.5, encoder_options={"vocab": 300})
    assert small_vocab.modality().vocab == 300 == small_vocab.config["encoder"]["options"]["vocab"]


def test_a_vocabulary_larger_than_the_corpus_gives_is_the_tokenizers_and_a_bad_one_is_refused(other_corpus, tmp_path):
    run = ul.pretrain(other_corpus, tmp_path / "big", method="mlm", epochs=0.05, encoder_options={"vocab": 10_000_000})
    learned = run.modality().vocab
    assert learned < 2000 and run.config["encoder"]["options"]["vocab"] == learned  # not 10 million embedding rows
    assert run.encoder().token_embed.num_embeddings == learned
    with pytest.raises(UnlabeledError, match="at least 260"):  # 0 was taken as "the default"
        ul.pretrain(other_corpus, tmp_path / "zero", method="mlm", epochs=0.05, encoder_options={"vocab": 0})
    for bad in ("abc", 300.5, True):
        with pytest.raises(UnlabeledError, match="vocab takes a whole number"):
            ul.pretrain(other_corpus, tmp_path / f"bad{bad}", method="mlm", epochs=0.05, encoder_options={"vocab": bad})


def test_continued_pretraining_goes_on_with_the_init_runs_method(other_corpus, tmp_path):
    """Without --method, a text run continued from a causal model was trained as a masked one
    (the data's default) and failed: "mlm needs a bidirectional encoder"."""
    gpt = ul.pretrain(other_corpus, tmp_path / "gpt", method="clm", epochs=0.05, batch_size=32)
    more = ul.pretrain(other_corpus, tmp_path / "more", init=gpt, epochs=0.05, batch_size=32)
    assert more.config["method"]["name"] == "clm"
