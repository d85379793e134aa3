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

import torch

from unlabeled._console import UnlabeledError, progress
from unlabeled.data.collection import Collection, open_collection
from unlabeled.modalities.text import BOS, EOS, TextModality
from unlabeled.runs import Run, open_run, resolve_device


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
    temperature: float = 1.0,
    top_k: int = 0,
    seed: int = 0,
    device: str = "auto",
) -> str:
    """``prompt`` continued by sampling from a ``clm`` run: each next token drawn from the
    softmax of the scores over ``temperature`` (0: the most likely token), among the ``top_k``
    most likely (0: all), with a seeded generator; it stops at ``[EOS]``, after ``max_tokens``
    or at the model's context length."""
    if temperature < 0 or top_k < 0 or max_tokens < 0:
        raise UnlabeledError("temperature, top-k and max-tokens must not be negative")
    _, encoder, mod = _causal(run)
    dev = resolve_device(device)
    encoder.to(dev)
    ids = [BOS, *mod.tokenizer.encode(prompt, add_special_tokens=False).ids][: mod.length]
    start = len(ids)
    g = torch.Generator(device=dev).manual_seed(seed)
    while len(ids) < min(mod.length, start + max_tokens):
        x = torch.tensor([ids], device=dev)
        scores = (encoder(x)[0, -1] @ encoder.token_embed.weight.t()).float()
        if top_k:
            kth = torch.topk(scores, min(top_k, len(scores))).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        if temperature == 0:
            nxt = int(scores.argmax())
        else:
            nxt = int(torch.multinomial((scores / temperature).softmax(-1), 1, generator=g))
        if nxt == EOS:
            break
        ids.append(nxt)
    return prompt + mod.tokenizer.decode(ids[start:], skip_special_tokens=True)


def _windows(mod: TextModality, text: str) -> list[list[int]]:
    """A document's ids ``[BOS] tokens [EOS]`` cut into windows of the model's length (each
    later window starting again from ``[BOS]``: no context carried across)."""
    ids = [*mod.tokenizer.encode(text, add_special_tokens=False).ids, EOS]
    step = mod.length - 1
    return [[BOS, *ids[i : i + step]] for i in range(0, len(ids), step)]


@torch.no_grad()
def perplexity(
    run: Run | str | os.PathLike[str],
    data: Collection | str | os.PathLike[str],
    *,
    split: str | None = "test",
    batch_size: int = 64,
    device: str = "auto",
) -> dict[str, float]:
    """How well a ``clm`` run predicts the documents of ``data``'s ``split`` (every token of
    each, its ``[EOS]`` included, in windows of the model's length): ``perplexity`` per token,
    ``bits_per_byte`` over the documents' UTF-8 bytes (a newline between documents counted as
    one byte each, as a file of them would hold), and the counts."""
    _, encoder, mod = _causal(run)
    col = open_collection(data)
    if not col.is_text:
        raise UnlabeledError(f"{col.path} holds {col.modality} samples, not text")
    dev = resolve_device(device)
    encoder.to(dev)
    pos = col.indices(split)
    if not len(pos):
        raise UnlabeledError(f"{col.path} has no {split} split")
    nll, tokens, nbytes = 0.0, 0, 0
    with progress() as bar:
        task = bar.add_task("perplexity", total=len(pos))
        for start in range(0, len(pos), batch_size):
            docs = [str(t) for t in col.get(pos[start : start + batch_size])]
            nbytes += sum(len(d.encode("utf-8")) + 1 for d in docs)
            rows = [w for d in docs for w in _windows(mod, d)]
            x = torch.zeros(len(rows), mod.length, dtype=torch.int64)
            for i, r in enumerate(rows):
                x[i, : len(r)] = torch.tensor(r)
            x = x.to(dev)
            logits = (encoder(x) @ encoder.token_embed.weight.t()).float()[:, :-1]
            target = x[:, 1:]
            real = target != 0
            lp = torch.log_softmax(logits, -1).gather(-1, target.unsqueeze(-1)).squeeze(-1)
            nll -= float(lp[real].sum())
            tokens += int(real.sum())
            bar.advance(task, len(docs))
    return {
        "perplexity": math.exp(nll / tokens),
        "bits_per_byte": nll / math.log(2) / nbytes,
        "tokens": float(tokens),
        "bytes": float(nbytes),
        "documents": float(len(pos)),
    }


def compressor_bits_per_byte(texts: list[str]) -> dict[str, float]:
    """Bits per byte of the documents, one per line, under ``xz -9`` (LZMA preset 9, extreme)
    and ``zstd -19``: the anchors a language model's bits per byte is compared with."""
    import lzma

    import zstandard

    raw = "".join(t + "\n" for t in texts).encode("utf-8")
    xz = lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)
    zs = zstandard.ZstdCompressor(level=19).compress(raw)
    return {"xz -9e": 8 * len(xz) / len(raw), "zstd -19": 8 * len(zs) / len(raw), "bytes": float(len(raw))}


__all__ = ["compressor_bits_per_byte", "generate", "perplexity"]
