"""CLM: causal language modelling, next-token prediction.

Radford, Narasimhan, Salimans, Sutskever 2018, "Improving Language Understanding by Generative
Pre-Training" (GPT). The encoder is the token transformer with causal attention (each token
sees itself and the tokens before it); the output layer is tied to the token embedding (Press
and Wolf 2017, "Using the Output Embedding to Improve Language Models"), and the loss is the
cross-entropy of every next token of a sequence, its ``[EOS]`` included, its padding excluded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.modalities.text import BOS, EOS, PAD
from unlabeled.objectives.base import Objective, require_text


def next_token_logits(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, L, vocab): at each position, the causal encoder's scores for the token after it."""
    return encoder(x) @ encoder.token_embed.weight.t()


def next_token_loss(logits: torch.Tensor, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of tokens 2..L given the ones before, padding left out (``target``:
    other next-token targets than ``x[:, 1:]``, ``PAD`` where a token is not scored)."""
    target = x[:, 1:] if target is None else target
    return F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), target.flatten(), ignore_index=PAD)


def document_windows(mod: Any, text: str) -> list[list[int]]:
    """A document's ids ``[BOS] tokens [EOS]`` cut into windows of the model's length (each
    later window starting again from ``[BOS]``: no context carried across)."""
    ids = [*mod.tokenizer.encode(text, add_special_tokens=False).ids, EOS]
    step = mod.length - 1
    return [[BOS, *ids[i : i + step]] for i in range(0, len(ids), step)]


NLL_WINDOWS = 32  # windows scored per forward pass by documents_nll


@torch.no_grad()
def documents_nll(
    encoder: nn.Module, mod: Any, docs: list[str], advance: Callable[[float], None] | None = None
) -> tuple[float, int]:
    """The summed negative log-likelihood (nats) of every token of ``docs`` (each one's
    ``[EOS]`` included, in :func:`document_windows`) under a causal encoder, and the tokens
    counted: what perplexity and bits per byte are made of. ``advance`` is told the documents'
    worth scored after each forward pass (a share of a long document's windows counts as that
    share of one document), so a progress bar moves, with an estimate, within one long document."""
    windows = [document_windows(mod, d) for d in docs]
    rows = [w for ws in windows for w in ws]
    worth = [1 / len(ws) for ws in windows for _ in ws]
    dev = next(encoder.parameters()).device
    nll, count = 0.0, 0
    # a few windows at a time: a long document has many, and the log-probabilities of every
    # window at once (windows x length x vocabulary) grew without bound (8 GB for 380 kB)
    for start in range(0, len(rows), NLL_WINDOWS):
        chunk = rows[start : start + NLL_WINDOWS]
        x = torch.zeros(len(chunk), mod.length, dtype=torch.int64)
        for i, r in enumerate(chunk):
            x[i, : len(r)] = torch.tensor(r)
        x = x.to(dev)
        target = x[:, 1:]
        lp = torch.log_softmax(next_token_logits(encoder, x).float()[:, :-1], -1)
        lp = lp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
        real = target != PAD
        nll, count = nll - float(lp[real].sum()), count + int(real.sum())
        if advance is not None:
            advance(sum(worth[start : start + NLL_WINDOWS]))
    return nll, count


class CLM(Objective):
    name = "clm"

    def __init__(self, encoder: nn.Module, modality: Any) -> None:
        super().__init__(encoder, modality)
        require_text(encoder, self.name, causal=True)

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        loss = next_token_loss(next_token_logits(self.encoder, x), x)
        return loss, {"loss": loss.detach()}
