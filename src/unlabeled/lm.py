"""What a causal language model (a ``clm`` run) is for besides its embeddings: sampling text
from it, and how well it predicts held-out text (perplexity, and bits per byte, which compares
with any compressor: ``xz -9`` on the same bytes is the offline anchor a language model must
beat).

    text = generate(run, "A beagle is", max_tokens=30, temperature=0.8, top_k=40, seed=0)
    scores = perplexity(run, "data/wordnet")        # on its test split
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import torch

from unlabeled._console import UnlabeledError, info, progress, unencodable, warn
from unlabeled._settings import check_count
from unlabeled.data.collection import Collection, open_collection
from unlabeled.modalities.text import BOS, EOS, MASK, PAD, TextModality
from unlabeled.objectives.clm import documents_nll
from unlabeled.runs import Run, count_trained, open_run, resolve_device
from unlabeled.runtime import check_seed


def _causal(run: Run | str | os.PathLike[str]) -> tuple[Run, Any, TextModality]:
    run = open_run(run)
    mod = run.modality()
    if not isinstance(mod, TextModality):
        raise UnlabeledError(f"{run.path} is not a text run (it reads {mod.name} samples)")
    encoder = run.encoder()
    if not getattr(encoder, "causal", False):
        raise UnlabeledError(f"{run.path} is not a causal language model; pretrain one with --method clm")
    return run, encoder.eval(), mod


@torch.no_grad()
def generate(
    run: Run | str | os.PathLike[str],
    prompt: str,
    *,
    max_tokens: int = 40,
    temperature: float = 0.8,
    top_k: int = 40,
    seed: int = 0,
    device: str = "auto",
) -> str:
    """``prompt`` continued by sampling from a ``clm`` run: each next token drawn from the
    softmax of the scores over ``temperature`` (0: the most likely token), among the ``top_k``
    most likely (0: all), with a seeded generator; it stops at ``[EOS]``, after ``max_tokens``
    or at the model's context length. A prompt too long for the context is read from its end
    (the tokens nearest the continuation), leaving room for the new tokens; either is said."""
    _check_sampling(prompt, max_tokens, temperature, top_k)
    check_seed(seed, "--seed")
    _, encoder, mod = _causal(run)
    dev = resolve_device(device)
    encoder.to(dev)
    ids = [BOS, *_fit_prompt(mod, mod.tokenizer.encode(prompt, add_special_tokens=False).ids, max_tokens)]
    g = torch.Generator(device=dev).manual_seed(seed)
    new = continue_ids(encoder, mod, ids, max_tokens, temperature, top_k, g)
    return prompt + mod.tokenizer.decode(new, skip_special_tokens=True)


def _check_sampling(prompt: Any, max_tokens: Any, temperature: Any, top_k: Any) -> None:
    """:func:`generate`'s arguments, each a clear error rather than a failure deep in torch."""
    if not isinstance(prompt, str):
        raise UnlabeledError(f"the prompt must be text, got {prompt!r}")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError as e:  # a shell's bytes that are not UTF-8, read as surrogates
        raise UnlabeledError(f"the prompt is not UTF-8 text ({unencodable(e)})") from None
    check_count(max_tokens, "--max-tokens", 0)
    check_count(top_k, "--top-k", 0)
    number = isinstance(temperature, int | float | np.integer | np.floating) and not isinstance(temperature, bool)
    if not number or not 0 <= temperature < math.inf:  # numpy's numbers too (np.float32(0.7) was refused)
        raise UnlabeledError(f"--temperature must be a finite number, 0 or more; got {temperature!r}")


def _fit_prompt(mod: TextModality, ids: list[int], max_tokens: int) -> list[int]:
    """The prompt's token ids that fit the context after ``[BOS]`` with room for the new ones:
    a prompt too long keeps its last tokens (an earlier version kept its first, so a long
    prompt was continued from its middle, or not at all); a cap on new tokens is said."""
    room = mod.length - 1  # [BOS]
    new = min(max_tokens, max(1, room // 4)) if len(ids) + max_tokens > room else max_tokens
    if len(ids) > room - new:
        info(f"note: the prompt's {len(ids)} tokens exceed the context of {mod.length}: its last {room - new} are read")
        ids = ids[len(ids) - (room - new) :]
    if len(ids) + max_tokens > room:
        info(f"note: at most {room - len(ids)} new tokens fit the model's context of {mod.length} after the prompt")
    return ids


@torch.no_grad()
def continue_ids(
    encoder: Any,
    mod: TextModality,
    ids: list[int],
    max_tokens: int,
    temperature: float = 0.0,
    top_k: int = 0,
    generator: torch.Generator | None = None,
) -> list[int]:
    """The tokens a causal ``encoder`` adds after ``ids``: each drawn from the softmax of the
    scores over ``temperature`` (0: the most likely) among the ``top_k`` most likely (0: all),
    until ``[EOS]``, ``max_tokens`` or the model's context length."""
    ids, start = list(ids), len(ids)
    dev = next(encoder.parameters()).device
    while len(ids) < min(mod.length, start + max_tokens):
        scores = (encoder(torch.tensor([ids], device=dev))[0, -1] @ encoder.token_embed.weight.t()).float()
        # never [PAD], [MASK] or [BOS]: a [PAD] drawn was read as padding by the next pass
        scores[[PAD, MASK, BOS]] = float("-inf")
        if top_k:
            kth = torch.topk(scores, min(top_k, len(scores))).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = (scores / temperature).softmax(-1) if temperature else None
        if probs is None or not torch.isfinite(probs).all():  # 0, or so small the scores overflow: its limit
            nxt = int(scores.argmax())
        else:
            nxt = int(torch.multinomial(probs, 1, generator=generator))
        if nxt == EOS:
            break
        ids.append(nxt)
    return ids[start:]


def _check_held_out(src: Run, col: Collection, pos: np.ndarray) -> None:
    """Say when the model trained on documents it is scored on: matched by id in the collection
    it trained on, by content in any other (the same glosses imported twice)."""
    try:
        (seen,) = count_trained(src, col, pos)
    except UnlabeledError as e:
        warn(f"could not check which documents {src.path} trained on ({e})")
        return
    if seen:
        warn(f"{src.path} trained on {seen} of the {len(pos)} documents scored: this perplexity is not a held-out one")


@torch.no_grad()
def perplexity(
    run: Run | str | os.PathLike[str],
    data: Collection | str | os.PathLike[str],
    *,
    split: str | None = "test",
    batch_size: int = 64,
    device: str = "auto",
) -> dict[str, float]:
    """How well a ``clm`` run predicts the documents of ``data``'s ``split`` (``all`` or None:
    every document; a named split of a collection without splits is refused) (every token of
    each, its ``[EOS]`` included, in windows of the model's length): ``perplexity`` per token,
    ``bits_per_byte`` over the documents' UTF-8 bytes (a newline between documents counted as
    one byte each, as a file of them would hold), and the counts."""
    check_count(batch_size, "--batch-size", 1)
    src, encoder, mod = _causal(run)
    col = open_collection(data)
    if not col.is_text:
        raise UnlabeledError(f"{col.path} holds {col.modality} samples, not text")
    dev = resolve_device(device)
    encoder.to(dev)
    pos = scored_positions(col, split)
    _check_held_out(src, col, pos)
    nll, tokens, nbytes = 0.0, 0, 0
    with progress() as bar:
        task = bar.add_task("perplexity", total=len(pos))
        for start in range(0, len(pos), batch_size):
            docs = [str(t) for t in col.get(pos[start : start + batch_size])]
            nbytes += sum(len(d.encode("utf-8")) + 1 for d in docs)
            got = documents_nll(encoder, mod, docs, lambda n: bar.advance(task, n))
            nll, tokens = nll + got[0], tokens + got[1]
    return {
        "perplexity": math.exp(nll / tokens),
        "bits_per_byte": nll / math.log(2) / nbytes,
        "tokens": float(tokens),
        "bytes": float(nbytes),
        "documents": float(len(pos)),
    }


def scored_positions(col: Collection, split: str | None) -> np.ndarray:
    """The documents of ``col`` that :func:`perplexity` scores: ``split`` (``all`` or None:
    every one); a named split of a collection without splits, or an empty one, is refused."""
    if split not in (None, "all") and col.splits is None:
        raise UnlabeledError(
            f"{col.path} has no splits, so no {split} split; pass --split all to score every document "
            "(held out from the model only if it was not trained on them)"
        )
    pos = col.indices(None if split == "all" else split)
    if not len(pos):
        raise UnlabeledError(f"{col.path} has no {split} split")
    return pos


def as_file(texts: list[str]) -> bytes:
    """The documents as a file holds them: UTF-8, one a line."""
    return "".join(t + "\n" for t in texts).encode("utf-8")


def compressor_bits_per_byte(texts: list[str]) -> dict[str, float]:
    """Bits per byte of the documents, one per line, under ``xz -9`` (LZMA preset 9, extreme)
    and ``zstd -19``: the anchors a language model's bits per byte is compared with."""
    import lzma

    import zstandard

    raw = as_file(texts)
    xz = lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    zs = zstandard.ZstdCompressor(level=19).compress(raw)
    return {"xz -9e": 8 * len(xz) / len(raw), "zstd -19": 8 * len(zs) / len(raw), "bytes": float(len(raw))}


class ByteNGram:
    """A byte-level n-gram model with Witten-Bell interpolation (Witten and Bell 1991, the
    escape estimate of PPM compressors): the probability of byte ``w`` after context ``h`` is
    ``(c(h w) + u(h) P(w | h')) / (c(h) + u(h))``, ``u(h)`` the number of distinct bytes seen
    after ``h`` and ``h'`` the context one byte shorter, down to a uniform distribution over
    the 256 bytes. The language-model anchor that needs no training loop: counted with numpy
    sorts (n-grams as 64-bit integers, so ``order`` is at most 7) in seconds on a CPU."""

    def __init__(self, order: int = 6) -> None:
        if not 1 <= order <= 7:
            raise ValueError(f"order must be 1 to 7, got {order}")
        self.order = order

    @staticmethod
    def _grams(data: np.ndarray, k: int) -> np.ndarray:
        """Each position's ``k`` previous bytes and its own as one integer (positions < k left out)."""
        n = max(len(data) - k, 0)  # a text shorter than the order has none
        key = np.zeros(n, dtype=np.int64)
        for j in range(k + 1):
            key = (key << 8) | data[j : j + n]
        return key

    def fit(self, text: bytes) -> ByteNGram:
        data = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
        self.tables = []
        for k in range(self.order):
            grams, counts = np.unique(self._grams(data, k), return_counts=True)
            ctx, first = np.unique(grams >> 8, return_index=True)
            total = np.add.reduceat(counts, first)
            distinct = np.diff(np.append(first, len(grams)))
            self.tables.append((grams, counts, ctx, total, distinct))
        return self

    @staticmethod
    def _find(keys: np.ndarray, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each key is in the sorted ``table``, and whether it is there."""
        at = np.searchsorted(table, keys).clip(0, len(table) - 1)
        return at, table[at] == keys

    def log2_probs(self, text: bytes) -> np.ndarray:
        """log2 P(byte | the bytes before it) of every byte of ``text`` but the first ``order - 1``."""
        data = np.frombuffer(text, dtype=np.uint8).astype(np.int64)
        skip = self.order - 1
        p = np.full(max(len(data) - skip, 0), 1 / 256)
        for k, (grams, counts, ctx, total, distinct) in enumerate(self.tables):
            if not len(grams):  # nothing of this order was counted (a training text shorter than it)
                continue
            keys = self._grams(data, k)[skip - k :]
            at, seen = self._find(keys, grams)
            c_hw = np.where(seen, counts[at], 0)
            at, seen = self._find(keys >> 8, ctx)
            c_h, u_h = np.where(seen, total[at], 0), np.where(seen, distinct[at], 0)
            p = np.where(c_h > 0, (c_hw + u_h * p) / np.maximum(c_h + u_h, 1), p)
        return np.log2(p)


def ngram_bits_per_byte(train: list[str], test: list[str], order: int = 6) -> float:
    """Bits per byte of ``test`` (documents one per line) under a :class:`ByteNGram` counted
    on ``train``; the first ``order - 1`` bytes are coded at 8 bits each."""
    model = ByteNGram(order).fit(as_file(train))
    data = as_file(test)
    if not data:
        raise UnlabeledError("no test text to score")
    return float((-model.log2_probs(data).sum() + 8 * min(order - 1, len(data))) / len(data))


__all__ = ["ByteNGram", "compressor_bits_per_byte", "generate", "ngram_bits_per_byte", "perplexity"]
