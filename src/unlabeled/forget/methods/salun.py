"""``salun``: Fan, Liu, Zhang, Wei, Wong, Liu 2024, "SalUn: Empowering Machine Unlearning via
Gradient-based Weight Saliency in Both Image Classification and Generation" (ICLR): the
forget set relabelled at random (another class per sample) and trained on together with the
retain set — each step one batch of retain samples and a share of forget samples in
proportion to the two sets' sizes, as training on their union does — with only the salient
half of the weights updated, those where the forget loss's gradient is largest, so the rest
of the model, which the forget set barely shaped, is left as it was."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.data.collection import Collection
from unlabeled.forget.methods.base import Approximate
from unlabeled.forget.unlearner import Unlearner
from unlabeled.modalities.text import concat_batches


def saliency_masks(grads: list[torch.Tensor], sparsity: float) -> list[torch.Tensor]:
    """1 where a weight's accumulated |gradient| is in the top ``sparsity`` share, thresholded
    over the whole model (SalUn eq. 4), else 0."""
    flat = torch.cat([a.flatten() for a in grads])
    k = max(1, int(round(sparsity * flat.numel())))
    threshold = flat.kthvalue(flat.numel() - k + 1).values
    return [(a >= threshold).to(a.dtype) for a in grads]


def other_class(y: torch.Tensor, classes: int, generator: torch.Generator) -> torch.Tensor:
    """Each label replaced by another class, drawn uniformly (SalUn's random labelling)."""
    shift = torch.randint(1, classes, y.shape, generator=generator, device=generator.device)
    return (y + shift.to(y.device)) % classes


class SalUn(Unlearner):
    name = "salun"

    def __init__(
        self, encoder, modality, classes, other=None, sparsity: float = 0.5, saliency_samples: int = 512
    ) -> None:
        super().__init__(encoder, modality, classes, other)
        self.classes, self.sparsity, self.saliency_samples = classes, sparsity, saliency_samples
        # masks aligned with trainable_parameters(); plain attributes, not buffers, so they are
        # not written into the unlearned model's weights (a rerun recomputes them)
        self.masks: list[torch.Tensor] | None = None

    def hparams(self) -> dict[str, Any]:
        return {"sparsity": self.sparsity, "saliency_samples": self.saliency_samples}

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if p.requires_grad and not name.startswith("original.")]

    def prepare(self, collection: Collection, forget: np.ndarray, retain: np.ndarray, device: torch.device) -> None:
        """Weight saliency (SalUn eq. 4): |∇ forget loss| summed over (up to
        ``saliency_samples`` of) the forget set; the top ``sparsity`` share of weights,
        thresholded over the whole model, is what unlearning may change. The forget batch is
        sized to the forget set's share of the union."""
        if self.other is not None:
            self.other.batch_size = max(1, round(self.other.batch_size * len(forget) / max(len(retain), 1)))
        self.to(device)
        params = self.trainable_parameters()
        grads = [torch.zeros_like(p) for p in params]
        rng = np.random.default_rng(0)
        pos = np.sort(rng.choice(forget, min(len(forget), self.saliency_samples), replace=False))
        g = torch.Generator(device=device).manual_seed(0)
        for start in range(0, len(pos), 256):
            chunk = pos[start : start + 256]
            x = self.modality.prepare(collection.get(chunk), device)
            y = torch.from_numpy(collection.labels[chunk]).to(device)
            loss = F.cross_entropy(self.logits(x, g).float(), y, reduction="sum")
            for acc, grad in zip(grads, torch.autograd.grad(loss, params), strict=True):
                acc += grad.abs()
        self.masks = saliency_masks(grads, self.sparsity)

    def before_update(self) -> None:
        if self.masks is None:
            return
        for p, m in zip(self.trainable_parameters(), self.masks, strict=True):
            if p.grad is not None:
                p.grad.mul_(m.to(p.grad.device))

    def loss(self, x, generator, y):
        if self.other is None:
            loss = F.cross_entropy(self.logits(x, generator).float(), y)
            return loss, {"loss": loss.detach(), "retain_ce": loss.detach()}
        # the forget share of the step, each sample given another class, in one forward pass
        # with the retain batch: one batch of the union, as SalUn trains on it, so that batch
        # norm sees the union (the gap to retraining measured the same as with two passes)
        xf, yf = self.other.draw(self.modality, generator, x.device)
        relabelled = other_class(yf, self.classes, generator)
        ce = F.cross_entropy(
            self.logits(concat_batches(x, xf), generator).float(), torch.cat([y, relabelled]), reduction="none"
        )
        loss, ce = ce.mean(), ce.detach()
        return loss, {"loss": loss.detach(), "retain_ce": ce[: len(y)].mean(), "forget_rl": ce[len(y) :].mean()}


class SalUnMethod(Approximate):
    name = "salun"
    objective = SalUn
    stream = "retain"
    settings = ("sparsity",)
    limits = {"sparsity": (lambda v: 0 < v <= 1, "a share of the weights in (0, 1]")}
    epochs = 0.1
    lr = 2e-3
