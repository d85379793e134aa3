"""The text modality and the token transformer: a tokenizer fitted on the training split
alone, ids with [BOS]/[EOS]/[PAD], a padding mask that attention and pooling respect, and
causal attention that never looks ahead."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unlabeled.data.collection import CollectionWriter
from unlabeled.modalities import fit_modality, modality_from_state
from unlabeled.modalities.text import BOS, EOS, PAD, TextModality
from unlabeled.models import build_encoder


@pytest.fixture(scope="module")
def text_mod(wordnet_small):
    return fit_modality(wordnet_small, wordnet_small.indices("train"))


def test_the_tokenizer_learns_from_the_training_split_alone(tmp_path):
    train = [f"the quick brown fox jumps over the lazy dog number {i}" for i in range(300)]
    test = ["zyzzyvas quetzalcoatl zyzzyvas quetzalcoatl"] * 300
    w = CollectionWriter(tmp_path / "c", "text", (), "object")
    w.add(train + test, [str(i) for i in range(600)], splits=["train"] * 300 + ["test"] * 300)
    col = w.close()
    vocab = fit_modality(col, col.indices("train")).tokenizer.get_vocab()
    assert "Ġquick" in vocab and "Ġlazy" in vocab  # frequent in train: merged into one token
    assert not any("zyzz" in t or "quetz" in t for t in vocab)  # test-only words: never merged
    vocab_all = fit_modality(col, col.indices()).tokenizer.get_vocab()
    assert any("zyzz" in t for t in vocab_all)  # (they would be, had the test split been read)


def test_documents_become_bos_tokens_eos_then_padding_and_decode_back(text_mod, wordnet_small):
    docs = wordnet_small.get(wordnet_small.indices("test")[:64])
    x = text_mod.prepare(docs)
    lengths = (x != PAD).sum(1)
    assert x.dtype == torch.int64 and x.shape == (64, int(lengths.max())) and x.shape[1] <= text_mod.length
    assert (x[:, 0] == BOS).all()
    for row, n in zip(x, lengths, strict=True):
        assert row[n - 1] == EOS or n == text_mod.length  # cut documents end without [EOS]
        assert (row[n:] == PAD).all() and (row[1 : n - 1] > EOS).all()
    short = [i for i, n in enumerate(lengths) if n < text_mod.length]
    assert text_mod.decode(x[short]) == [docs[i] for i in short]  # byte-level BPE loses nothing
    assert 8 <= text_mod.length <= 128 and text_mod.length % 8 == 0


def test_a_document_cut_to_the_length_ends_without_eos(text_mod):
    """A causal model learnt from the [EOS] placed after the cut that every long document ends
    at the context's end; a cut document now fills the length with its own tokens."""
    long, short = " ".join(["a dog is a domesticated carnivore"] * 200), "a small dog"
    cut, whole = text_mod.prepare(np.array([long, short], dtype=object))
    assert len(cut) == text_mod.length and cut[-1] != EOS and (cut[1:] > EOS).all()
    n = int((whole != PAD).sum())
    assert whole[n - 1] == EOS and text_mod.decode(whole[None])[0] == short


def test_special_tokens_written_in_a_document_are_read_as_text(text_mod, wordnet_small):
    """ "[PAD]" or "[EOS]" typed in a document are its bytes, not the special tokens: a document
    of "[PAD]"s used to be read as padding, masked out of embeddings and never scored by
    perplexity (bits per byte near zero for an untrained model)."""
    docs = np.array(["[PAD][PAD][PAD]", "a [EOS] b [BOS] c [MASK]"], dtype=object)
    x = text_mod.prepare(docs)
    lengths = (x != PAD).sum(1)
    for row, n in zip(x, lengths, strict=True):
        assert row[0] == BOS and row[n - 1] == EOS and (row[1 : n - 1] > EOS).all()
    assert text_mod.decode(x) == list(docs)
    rebuilt = modality_from_state(text_mod.state())  # the setting is not saved: every load makes it
    assert torch.equal(rebuilt.prepare(docs), x)


def test_a_batch_cut_to_its_longest_document_gives_the_loss_and_gradients_of_one_padded_to_the_full_length(
    text_mod, wordnet_small
):
    """``prepare`` pads to the batch's longest document, not to ``L``: padding is masked out of
    attention and of the loss, so nothing changes but the cost."""
    from unlabeled.objectives.clm import next_token_logits, next_token_loss

    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab, causal=True)
    x = text_mod.prepare(wordnet_small.get(np.arange(8)))
    full = torch.nn.functional.pad(x, (0, text_mod.length - x.shape[1]), value=PAD)
    assert x.shape[1] < text_mod.length  # eight glosses: shorter than the 95th percentile's length
    grads = []
    for batch in (x, full):
        loss = next_token_loss(next_token_logits(enc, batch), batch)
        grads.append((loss.detach(), torch.autograd.grad(loss, list(enc.parameters()))))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-5, atol=1e-6)
    for a, b in zip(grads[0][1], grads[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_batches_prepared_apart_join_padded_to_the_widest():
    from unlabeled.modalities.text import concat_batches

    a, b = torch.tensor([[BOS, 9, EOS]]), torch.tensor([[BOS, 7, 8, 9, EOS], [BOS, EOS, PAD, PAD, PAD]])
    joined = concat_batches(a, b)
    assert joined.tolist() == [[BOS, 9, EOS, PAD, PAD], [BOS, 7, 8, 9, EOS], [BOS, EOS, PAD, PAD, PAD]]
    images = torch.rand(2, 1, 4, 4)
    assert torch.equal(concat_batches(images, images), torch.cat([images, images]))  # other data: as torch.cat


def test_the_modality_rebuilds_from_its_state(text_mod, wordnet_small):
    again = modality_from_state(text_mod.state())
    assert isinstance(again, TextModality) and again.vocab == text_mod.vocab
    docs = wordnet_small.get(np.arange(10))
    assert torch.equal(again.prepare(docs), text_mod.prepare(docs))


def test_padding_changes_no_embedding_and_causal_attention_never_looks_ahead(text_mod, wordnet_small):
    torch.manual_seed(0)
    enc = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab).eval()
    x = text_mod.prepare(wordnet_small.get(np.arange(8)))
    with torch.no_grad():
        alone = torch.cat([enc.embed(x[i : i + 1, : int((x[i] != PAD).sum())]) for i in range(8)])
        torch.testing.assert_close(enc.embed(x), alone, rtol=1e-4, atol=1e-5)
    causal = build_encoder("transformer", "tiny", text_mod.input_shape, vocab=text_mod.vocab, causal=True).eval()
    y = x.clone()
    y[:, 6:] = torch.randint(4, text_mod.vocab, y[:, 6:].shape)
    with torch.no_grad():
        a, b = causal(x), causal(y)
    torch.testing.assert_close(a[:, :6], b[:, :6])  # the first 6 outputs see only the first 6 tokens
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_the_tokenizer_trains_on_long_runs_cut_into_pieces_and_never_learns_a_longer_word():
    """A run of characters without a space (DNA, a line of dashes) made the BPE trainer's time
    grow with the square of its length: a 1 MiB document hung ``pretrain`` past Ctrl-C."""
    from unlabeled.modalities.text import LONGEST_TRAINING_WORD, _training_pieces, train_tokenizer

    run = "ACGT" * 40_000
    texts = ["short text", f"before {run} after", "x" * LONGEST_TRAINING_WORD]
    pieces = list(_training_pieces(texts))
    assert pieces[0] == "short text" and pieces[-1] == "x" * LONGEST_TRAINING_WORD  # left whole
    assert "".join(pieces[1:-1]) == texts[1]  # nothing lost, nothing added
    assert max(len(w) for p in pieces for w in p.split()) <= LONGEST_TRAINING_WORD
    tok = train_tokenizer(texts * 3, vocab=600)
    assert max(len(t) for t in tok.get_vocab()) <= LONGEST_TRAINING_WORD + 1  # + the space before a word


def test_runs_of_whitespace_are_cut_for_the_tokenizer_too():
    """The byte-level pre-tokenizer keeps a run of spaces as one word, so 40,000 spaces cost the
    trainer 16 times what 10,000 did (a 1 MiB run: minutes): such runs are cut like words."""
    from unlabeled.modalities.text import LONGEST_TRAINING_WORD, _training_pieces

    text = "word " * 50 + " " * 40_000 + "end"
    pieces = list(_training_pieces([text]))
    assert "".join(pieces) == text
    assert max(len(p) for p in pieces) <= 250 + LONGEST_TRAINING_WORD  # the words before, then runs of 64


def test_the_context_length_is_fitted_over_the_whole_collection_not_its_first_documents(tmp_path):
    """The length was the 95th percentile of the first 20,000 documents' token counts: a corpus
    stored by group (WordNet's nouns first) set it from one group and cut the others short."""
    short, long = ["a cat"] * 20_000, [" ".join(["many more words here"] * 10)] * 5_000
    w = CollectionWriter(tmp_path / "c", "text", (), "object")
    w.add(short + long, [str(i) for i in range(25_000)])
    col = w.close()
    mod = TextModality.fit(col, vocab=300)
    assert mod.length >= 40  # the long fifth's length (about 40 tokens), not the short documents' 8


def test_a_causal_encoder_with_a_class_token_is_refused():
    """The class token comes first, and causal attention shows it only itself: every document
    had the same embedding."""
    from unlabeled._console import UnlabeledError

    with pytest.raises(UnlabeledError, match="pool 'cls' needs a bidirectional encoder"):
        build_encoder("transformer", "tiny", (16,), vocab=300, causal=True, pool="cls")


def test_a_document_is_encoded_from_its_head_with_the_same_first_tokens():
    from unlabeled.modalities.text import head, plain_text, train_tokenizer

    docs = [f"document {i} about the weather and the sea" for i in range(50)]
    tok = plain_text(train_tokenizer(docs, vocab=400))
    long_doc = "the weather and the sea " * 20_000
    assert head(docs, 16) == docs  # short ones left whole
    (cut,) = head([long_doc], 16)
    assert len(cut) < len(long_doc)
    assert tok.encode(cut).ids[:16] == tok.encode(long_doc).ids[:16]
