"""ECO's inference-time guard (Liu et al. 2024, "Large Language Model Unlearning via
Embedding-Corrupted Prompts"): a causal language model whose weights are unchanged, behind a
prompt classifier; a prompt the classifier says is about the forgotten target has its token
embeddings corrupted before the model reads them, so the model answers as one that cannot read
the question. Here the classifier is linear over the prompt's bag of token ids (so it lives in
the run's weights as two tensors) and the corruption adds Gaussian noise of ``sigma`` times the
prompt embeddings' root-mean-square to every prompt token; the prompt is a document's tokens up
to the end of its first ``marker`` (a question's ``"\\nAnswer:"``), or the whole input without one.
The noise of a prompt is drawn from a generator seeded by its token ids and scaled by its own
embeddings, so a prompt reads the same corruption whatever batch, and padding, it comes in.
"""

from __future__ import annotations

import zlib

import torch
from torch import nn

from unlabeled.modalities.text import PAD, after_marker


class CorruptedPrompts(nn.Module):
    """``inner`` (a causal token transformer) behind ECO's prompt classifier."""

    def __init__(self, inner: nn.Module, weights: dict[str, torch.Tensor], sigma: float) -> None:
        super().__init__()
        self.inner, self.sigma = inner, float(sigma)
        self.token_embed, self.dim = inner.token_embed, inner.dim
        self.vocab, self.causal, self.n_prefix = inner.vocab, inner.causal, inner.n_prefix
        self.register_buffer("weight", weights["weight"].float())
        self.register_buffer("bias", weights["bias"].float().reshape(()))
        self.register_buffer("marker", weights["marker"].long())

    def prompt(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: each row's prompt tokens (padding left out)."""
        found, end = after_marker(x, self.marker)  # end: the first token after the marker
        position = torch.arange(x.shape[1], device=x.device)
        return (x != PAD) & (~found[:, None] | (position[None] < end[:, None]))

    def flagged(self, x: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        """(B,) bool: the rows whose prompt the classifier puts on the forgotten side."""
        bag = torch.zeros(x.shape[0], len(self.weight), device=x.device)
        bag.scatter_(1, x.masked_fill(~prompt, PAD), 1.0)
        bag[:, PAD] = 0.0
        return bag @ self.weight + self.bias > 0

    def tokenize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens, pad = self.inner.tokenize(x)
        prompt = self.prompt(x)
        rows = self.flagged(x, prompt).nonzero().flatten().tolist()
        if rows:
            # one batch-wide draw (and scale) gave a question another corruption in another batch,
            # so its scores depended on the questions beside it
            tokens = tokens.clone()
            for i in rows:
                where = prompt[i].nonzero().flatten()
                seed = zlib.crc32(x[i, where].cpu().numpy().astype("<i8").tobytes())
                g = torch.Generator(device=tokens.device).manual_seed(seed)
                noise = torch.randn((len(where), tokens.shape[-1]), generator=g, device=tokens.device)
                mine = tokens[i, where]
                tokens[i, where] = mine + self.sigma * mine.pow(2).mean().sqrt() * noise.to(tokens.dtype)
        return tokens, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, pad = self.tokenize(x)
        return self.inner.run(tokens, pad)[:, self.n_prefix :]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The guarded outputs pooled as the model pools its own."""
        return self.inner.pooled(*self.tokenize(x))
