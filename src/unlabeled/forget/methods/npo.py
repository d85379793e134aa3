"""``npo``: Negative Preference Optimization, Zhang, Lin, Bai, Mei 2024, "Negative Preference
Optimization: From Catastrophic Collapse to Effective Unlearning": the bounded loss
``-(2/β) log σ(-β (log p_θ(y|x) - log p_ref(y|x)))`` on the forget set, plus cross-entropy on
retain batches (NPO+RT)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from unlabeled.forget.methods.base import Approximate
from unlabeled.forget.unlearner import Unlearner


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024, eq. 3): ``(2/β) E[log(1 + (p_θ/p_ref)^β)]`` over the forget set."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


def label_logp(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Log-probability of each sample's label."""
    return logits.float().log_softmax(1).gather(1, y[:, None])[:, 0]


class NPO(Unlearner):
    name = "npo"
    needs_original = True

    def __init__(self, encoder, modality, classes, other=None, beta: float = 0.1, retain_weight: float = 1.0) -> None:
        super().__init__(encoder, modality, classes, other)
        self.beta, self.retain_weight = beta, retain_weight

    def hparams(self) -> dict[str, Any]:
        return {"beta": self.beta, "retain_weight": self.retain_weight}

    def loss(self, x, generator, y):
        logits, ref = self.paired_logits(x, generator)
        forget = npo_loss(label_logp(logits, y), label_logp(ref, y), self.beta)
        loss, logs = forget, {"npo": forget.detach()}
        if self.other is not None and self.retain_weight:
            xr, yr = self.other.draw(self.modality, generator, x.device)
            retain = F.cross_entropy(self.logits(xr, generator).float(), yr)
            loss = loss + self.retain_weight * retain
            logs["retain_ce"] = retain.detach()
        logs["loss"] = loss.detach()
        return loss, logs


class NPOMethod(Approximate):
    name = "npo"
    objective = NPO
    stream = "forget"
    settings = ("beta", "retain_weight")
    limits = {"beta": (lambda v: v > 0, "positive"), "retain_weight": (lambda v: v >= 0, "0 or more")}
    epochs = 2.0
    lr = 2e-4
