"""Text: documents become token ids through a byte-level BPE tokenizer (Sennrich et al. 2016,
"Neural Machine Translation of Rare Words with Subword Units"; byte-level as in GPT-2, so no
text is ever out of vocabulary) trained with the ``tokenizers`` library on the training split
alone when a run starts, and saved in the run's config with the rest of the modality's state.

``prepare`` gives (B, W) int64 ids: ``[BOS]``, the document's tokens and ``[EOS]`` (a document
too long for the sequence length ``L`` is cut to fill it, without ``[EOS]``: it does not end
there), then ``[PAD]`` (id 0) up to ``W``, the batch's longest document
(at most ``L``), which the transformer reads as its padding mask. Padding is left out of
attention and of every loss, so a batch is cut to its longest document rather than padded to
``L``: the same outputs and gradients, at the cost of the tokens there are (a batch of eight
45-token answers under a model of 128 tokens: 2.5 times fewer positions). What is drawn at
random in the batch's shape (MLM's masks, SimCSE's dropout) is drawn over fewer positions, so a
seed gives other masks than it did when every batch was ``L`` wide. Batches prepared apart join
with :func:`concat_batches`. ``L`` is fitted too: the 95th percentile of the documents' token
counts, rounded up to a multiple of 8, at most ``max_len``.

Text has no batched augmentation of its own: what makes two views of a sentence differ is the
objective's (masking for MLM, dropout for SimCSE), so ``augment`` returns the batch unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError
from unlabeled.data.collection import Collection
from unlabeled.modalities.base import Modality, sample_positions

SPECIAL_TOKENS = ("[PAD]", "[MASK]", "[BOS]", "[EOS]")
PAD, MASK, BOS, EOS = range(len(SPECIAL_TOKENS))
DEFAULT_VOCAB = 8192
DEFAULT_MAX_LEN = 128
FIT_DOCUMENTS = 200_000  # documents the tokenizer and the length are fitted on, at most


@dataclass
class TextAugment:
    """No settings: text is not augmented by the modality."""


def train_tokenizer(texts: list[str], vocab: int = DEFAULT_VOCAB) -> Any:
    """A byte-level BPE tokenizer with ``vocab`` entries (the special tokens first), trained on
    ``texts``; deterministic for the same texts in the same order."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if vocab < 256 + len(SPECIAL_TOKENS):
        raise UnlabeledError(f"a byte-level vocabulary needs at least {256 + len(SPECIAL_TOKENS)} entries, not {vocab}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_training_pieces(texts), trainer)
    return tok


def head(texts: Iterable[str], tokens: int) -> list[str]:
    """Each text cut to what its first ``tokens`` tokens can span (256 characters a token, more
    than any BPE token here holds): a sequence keeps no more, and a 1 MiB document took a
    second to encode in every batch it was in. Shorter texts are left whole."""
    return [t[: (tokens + 8) * 256] for t in texts]


LONGEST_TRAINING_WORD = 64  # characters of a run without spaces the BPE trainer sees at once
# runs of whitespace too: the byte-level pre-tokenizer keeps a run of spaces as one word
_LONG_RUN = re.compile(rf"\S{{{LONGEST_TRAINING_WORD + 1},}}|\s{{{LONGEST_TRAINING_WORD + 1},}}")


def _training_pieces(texts: list[str]) -> Iterator[str]:
    """``texts`` for the BPE trainer, every run of more than LONGEST_TRAINING_WORD characters
    without a space (a DNA sequence, a line of dashes, CJK without punctuation), or of spaces
    alone, cut into pieces
    of that length, each its own sequence. The trainer's time grows with the square of a word's
    length: a 100,000-character run took 18 s, a 1 MiB document (the most a collection keeps)
    more than 13 minutes, which no Ctrl-C could stop. Words that long never become one token."""
    for text in texts:
        if len(text) <= LONGEST_TRAINING_WORD or not _LONG_RUN.search(text):
            yield text
            continue
        start = 0
        for m in _LONG_RUN.finditer(text):
            yield text[start : m.start()]
            run = m.group()
            yield from (run[i : i + LONGEST_TRAINING_WORD] for i in range(0, len(run), LONGEST_TRAINING_WORD))
            start = m.end()
        yield text[start:]


def plain_text(tokenizer: Any) -> Any:
    """``tokenizer`` set to read a document's text as text: "[PAD]" or "[EOS]" written in a
    document become the bytes they are, never the special tokens (which only the modality
    places, by id). Otherwise a document of "[PAD]"s would be scored as padding, that is not
    at all, and a perplexity near zero. The setting is not saved with the tokenizer."""
    tokenizer.encode_special_tokens = True
    return tokenizer


class TextModality(Modality):
    """Documents (stored as UTF-8) -> padded token ids, with the tokenizer inside."""

    name = "text"
    Augment = TextAugment

    def __init__(
        self,
        sample_shape: tuple[int, ...] = (),
        mean: Any = (0.0,),
        std: Any = (1.0,),
        tokenizer: str = "",
        length: int = DEFAULT_MAX_LEN,
        augment: Any = None,
    ) -> None:
        super().__init__(sample_shape, mean, std, augment)
        from tokenizers import Tokenizer

        if not tokenizer:
            raise UnlabeledError("a text modality needs its tokenizer (fit one with TextModality.fit)")
        if int(length) < 3:  # [BOS], a token and [EOS]
            raise UnlabeledError(f"a text length must be at least 3 tokens, got {length}")
        self.tokenizer_json, self.length = tokenizer, int(length)
        self.tokenizer = plain_text(Tokenizer.from_str(tokenizer))
        self.vocab = self.tokenizer.get_vocab_size()

    @classmethod
    def fit(
        cls,
        collection: Collection,
        positions: np.ndarray | None = None,
        augment: Any = None,
        vocab: int = DEFAULT_VOCAB,
        max_len: int = DEFAULT_MAX_LEN,
    ) -> TextModality:
        """The tokenizer trained on (up to 200,000 of) ``positions``' documents, and the length."""
        pos = sample_positions(collection, positions, FIT_DOCUMENTS)
        texts = [str(t) for t in collection.get(pos)]
        tok = train_tokenizer(texts, vocab)
        # the length from 20,000 documents spread over the positions, not the first 20,000: a
        # built-in corpus is stored by group (WordNet's nouns first), and one group's lengths cut
        # the others' documents short
        spread = [texts[i] for i in np.unique(np.linspace(0, len(texts) - 1, min(len(texts), 20_000)).astype(int))]
        counts = np.array([len(e.ids) + 2 for e in plain_text(tok).encode_batch(head(spread, max_len))])
        length = min(max_len, max(8, 8 * math.ceil(float(np.percentile(counts, 95)) / 8)))
        return cls((), (0.0,), (1.0,), tok.to_str(), length, augment)

    def extra_state(self) -> dict[str, Any]:
        return {"tokenizer": self.tokenizer_json, "length": self.length}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def patch(self) -> tuple[int, ...]:
        return (1,)

    def encoder_options(self) -> dict[str, Any]:
        return {"vocab": self.vocab}

    def prepare(self, batch: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        """``[BOS] tokens [EOS] [PAD]...`` for each document, (B, W) int64 on ``device``: ``W``
        the longest document's length, at most ``L`` (the module's docstring says why)."""
        encoded = self.tokenizer.encode_batch(head(map(str, batch), self.length), add_special_tokens=False)
        # a document cut to the length ends without [EOS]: a causal model learnt from the [EOS]
        # after the cut that every long document ends there
        keep = self.length - 2
        rows = [[BOS, *enc.ids, EOS] if len(enc.ids) <= keep else [BOS, *enc.ids[: keep + 1]] for enc in encoded]
        out = np.zeros((len(batch), max((len(r) for r in rows), default=2)), dtype=np.int64)
        for i, ids in enumerate(rows):
            out[i, : len(ids)] = ids
        return torch.from_numpy(out).to(device)

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Token ids back to text (special tokens left out)."""
        return self.tokenizer.decode_batch(ids.tolist(), skip_special_tokens=True)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def augment(self, x: torch.Tensor, generator: torch.Generator, light: bool = False) -> torch.Tensor:
        return x


def concat_batches(*batches: torch.Tensor) -> torch.Tensor:
    """Prepared batches joined along the batch axis; token ids (2-d integer batches, each as
    wide as its longest document) padded with ``[PAD]`` to the widest first."""
    if all(b.dim() == 2 and not b.is_floating_point() for b in batches):
        width = max(b.shape[1] for b in batches)
        batches = tuple(torch.nn.functional.pad(b, (0, width - b.shape[1]), value=PAD) for b in batches)
    return torch.cat(batches)


def after_marker(x: torch.Tensor, marker: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each row of token ids ``x`` (B, L) holds the token sequence ``marker`` first: (B,)
    whether it does, and (B,) the index of the token just after it (meaningless where not)."""
    k = len(marker)
    if k == 0 or x.shape[1] < k:
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), torch.zeros_like(x[:, 0])
    hits = (x.unfold(1, k, 1) == marker).all(-1)
    return hits.any(1), hits.to(torch.uint8).argmax(1) + k
