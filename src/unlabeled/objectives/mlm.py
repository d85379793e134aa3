"""MLM: masked language modelling.

Devlin, Chang, Lee, Toutanova 2019, "BERT: Pre-training of Deep Bidirectional Transformers for
Language Understanding" (NAACL). Of each sequence's real tokens (not padding, not ``[BOS]`` or
``[EOS]``) a random ``mask_ratio`` (15%) are chosen; of those 80% become ``[MASK]``, 10% a
random token and 10% stay as they are (:func:`bert_mask`), and the model predicts the original
token at every chosen position (cross-entropy). The prediction head is BERT's: a dense layer,
GELU and layer norm, then the output layer tied to the token embedding, with its own bias.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.modalities.text import MASK, SPECIAL_TOKENS
from unlabeled.objectives.base import Objective, require_text


def bert_mask(x: torch.Tensor, ratio: float, vocab: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's corruption of token ids ``x`` (B, L): (the input with 80% of the chosen positions
    ``[MASK]``, 10% a random non-special token, 10% unchanged; the chosen positions (B, L))."""
    real = x >= len(SPECIAL_TOKENS)
    chosen = (torch.rand(x.shape, generator=g, device=x.device) < ratio) & real
    how = torch.rand(x.shape, generator=g, device=x.device)
    random_ids = torch.randint(len(SPECIAL_TOKENS), vocab, x.shape, generator=g, device=x.device)
    if not bool(chosen.any()) and bool(real.any()):
        # a batch of a few short documents drew no position: the loss, a mean over none, would
        # be NaN at every try of that step; one real token is chosen instead (drawn last, so
        # every other batch's draws are as they were)
        pick = torch.rand(x.shape, generator=g, device=x.device).masked_fill(~real, -1.0).flatten().argmax()
        chosen = chosen.flatten().index_fill(0, pick.view(1), True).view(x.shape)
    out = torch.where(chosen & (how < 0.8), torch.full_like(x, MASK), x)
    out = torch.where(chosen & (how >= 0.8) & (how < 0.9), random_ids, out)
    return out, chosen


class MLM(Objective):
    name = "mlm"

    def __init__(self, encoder: nn.Module, modality: Any, mask_ratio: float = 0.15) -> None:
        super().__init__(encoder, modality)
        require_text(encoder, self.name, causal=False)
        if not 0 < mask_ratio < 1:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        self.mask_ratio = float(mask_ratio)
        width = encoder.width
        self.transform = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.LayerNorm(width))
        self.out_bias = nn.Parameter(torch.zeros(encoder.vocab))

    def hparams(self) -> dict[str, Any]:
        return {"mask_ratio": self.mask_ratio}

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        corrupted, chosen = bert_mask(x, self.mask_ratio, self.encoder.vocab, generator)
        hidden = self.encoder(corrupted)[chosen]  # (chosen tokens, width)
        logits = self.transform(hidden) @ self.encoder.token_embed.weight.t() + self.out_bias
        if not len(logits):  # documents of no real token at all: nothing to predict, no NaN
            zero = logits.sum() * 0
            return zero, {"loss": zero.detach(), "masked_acc": zero.detach()}
        loss = F.cross_entropy(logits.float(), x[chosen])
        acc = (logits.argmax(-1) == x[chosen]).float().mean()
        return loss, {"loss": loss.detach(), "masked_acc": acc.detach()}
