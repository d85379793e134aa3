"""SimCSE: contrastive sentence embeddings with dropout as the only augmentation.

Gao, Yao, Chen 2021, "SimCSE: Simple Contrastive Learning of Sentence Embeddings" (EMNLP),
the unsupervised variant: every sentence goes through the encoder twice, the two dropout masks
make two views, and InfoNCE pulls each pair together against the other sentences of the batch
(:func:`info_nce`, temperature 0.05). The embedding is the encoder's pooled one (the token mean
by default, which the paper found on par with its ``[CLS]`` pooling).

Dropout draws from PyTorch's global generator; the loss seeds it from the step's generator
first (inside a forked RNG state), so that a resumed run draws the same masks.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective, require_text


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy of each ``a[i]`` against every ``b[j]`` by cosine similarity over
    ``temperature``, the right answer ``j = i``."""
    sim = F.normalize(a.float(), dim=1) @ F.normalize(b.float(), dim=1).t() / temperature
    return F.cross_entropy(sim, torch.arange(len(a), device=a.device))


class SimCSE(Objective):
    name = "simcse"

    def __init__(self, encoder: nn.Module, modality: Any, temperature: float = 0.05) -> None:
        super().__init__(encoder, modality)
        require_text(encoder, self.name, causal=False)
        if not getattr(encoder, "dropout", 0.0):
            raise ValueError("simcse makes its views by dropout; build the encoder with dropout > 0")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = float(temperature)

    def hparams(self) -> dict[str, Any]:
        return {"temperature": self.temperature}

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            a, b = self.encoder.embed(x), self.encoder.embed(x)
        loss = info_nce(a, b, self.temperature)
        return loss, {"loss": loss.detach()}
