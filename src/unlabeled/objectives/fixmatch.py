"""Self-training with pseudo-labels and consistency (Sohn et al. 2020, "FixMatch: Simplifying
Semi-Supervised Learning with Consistency and Confidence").

Each batch holds ``B`` labelled samples and ``mu * B`` unlabelled ones (label ``-1``). The
labelled ones train with cross-entropy on a weak view; each unlabelled sample gets a
pseudo-label, the class the model predicts on its weak view, kept only where that prediction's
probability reaches ``threshold``, and the model is trained to predict it on a strong view:

    loss = CE(f(weak(x_l)), y_l) + lambda_u * mean_u[ 1(max p_u >= tau) * CE(f(strong(x_u)), argmax p_u) ]

Views come from the modality's batched augmentations, so every modality that has them
(image, series, audio, volume) self-trains: the weak view is the light, geometric one (crops,
flips, shifts), the strong view the full one pretraining uses, followed by Cutout (DeVries &
Taylor 2017), which FixMatch's strong view ends with: a box of ``cutout`` of each spatial
axis set to the normalised mean.

With ``ema`` > 0 the pseudo-labels come from an exponential moving average of the model (a
teacher in eval mode, as in Mean Teacher, Tarvainen & Valpola 2017) instead of the model
itself; the exported weights are the trained model's either way (``encoder.*``, ``head.*``),
so a self-trained run is a classifier run like any other.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective


def pseudo_labels(weak_logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's targets from the weak view's logits: the predicted classes and the mask of
    those whose probability reaches ``threshold`` (no gradient flows through either)."""
    probs = weak_logits.detach().float().softmax(-1)
    confidence, labels = probs.max(-1)
    return labels, confidence >= threshold


def cutout(x: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Every sample with one random box, ``fraction`` of each spatial axis (all axes after the
    channel axis), set to 0: the normalised mean. A new tensor; ``x`` is left as it was."""
    if fraction <= 0:
        return x
    b, dev = x.shape[0], x.device
    mask = torch.ones((b, *x.shape[2:]), dtype=torch.bool, device=dev)
    for axis, size in enumerate(x.shape[2:]):
        width = max(1, round(fraction * size))
        start = torch.randint(0, size - width + 1, (b,), generator=generator, device=dev)
        idx = torch.arange(size, device=dev)
        inside = (idx[None] >= start[:, None]) & (idx[None] < start[:, None] + width)
        shape = [b] + [1] * (x.dim() - 2)
        shape[axis + 1] = size
        mask = mask & inside.view(shape)
    return x.masked_fill(mask.unsqueeze(1), 0.0)


class FixMatch(Objective):
    """A classifier (encoder + linear head) trained on labelled and unlabelled samples at once.
    The batch's labels say which is which: ``-1`` marks an unlabelled sample."""

    name = "fixmatch"
    uses_labels = True

    def __init__(
        self,
        encoder: nn.Module,
        modality: Any,
        classes: int,
        threshold: float = 0.95,
        unlabeled_weight: float = 1.0,
        ema: float = 0.0,
        cutout: float = 0.5,
    ) -> None:
        super().__init__(encoder, modality)
        if classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight must be at least 0, got {unlabeled_weight}")
        if not 0 <= ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {ema}")
        if not 0 <= cutout < 1:
            raise ValueError(f"cutout must be in [0, 1), got {cutout}")
        self.classes, self.threshold = int(classes), float(threshold)
        self.unlabeled_weight, self.ema, self.cutout = float(unlabeled_weight), float(ema), float(cutout)
        self.head = nn.Linear(encoder.dim, self.classes)
        if self.ema:
            self.teacher_encoder = copy.deepcopy(encoder).requires_grad_(False)
            self.teacher_head = copy.deepcopy(self.head).requires_grad_(False)

    def hparams(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "threshold": self.threshold,
            "unlabeled_weight": self.unlabeled_weight,
            "ema": self.ema,
            "cutout": self.cutout,
        }

    def load_encoder(self, weights: dict[str, torch.Tensor]) -> None:
        self.encoder.load_state_dict(weights)
        if self.ema:
            self.teacher_encoder.load_state_dict(weights)

    def train(self, mode: bool = True) -> FixMatch:
        super().train(mode)
        if self.ema:  # the teacher predicts with its averaged batch-norm statistics
            self.teacher_encoder.eval()
            self.teacher_head.eval()
        return self

    def views(self, x: torch.Tensor, generator: torch.Generator, strong: bool) -> torch.Tensor:
        """Normalised views of a prepared batch: weak (geometric only) or strong (the full
        augmentation, then Cutout), in fp32 as ``Supervised.views``."""
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):
            if not strong:
                return mod.normalize(mod.augment(x, generator, light=True))
            return cutout(mod.normalize(mod.augment(x, generator)), self.cutout, generator)

    def _logits(self, x: torch.Tensor, teacher: bool = False) -> torch.Tensor:
        if teacher:
            return self.teacher_head(self.teacher_encoder.embed(x))
        return self.head(self.encoder.embed(x))

    def loss(self, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor):
        labelled = y >= 0
        xl, xu = x[labelled], x[~labelled]
        weak_l, weak_u = self.views(xl, generator, False), self.views(xu, generator, False)
        strong_u = self.views(xu, generator, True)
        if self.ema:
            with torch.no_grad():
                guess = self._logits(weak_u, teacher=True)
            logits = self._logits(torch.cat([weak_l, strong_u]))
            logits_l, logits_s = logits[: len(xl)], logits[len(xl) :]
        else:  # one pass over all three, as FixMatch does (batch norm sees them together)
            logits = self._logits(torch.cat([weak_l, weak_u, strong_u]))
            logits_l, guess, logits_s = logits.split([len(xl), len(xu), len(xu)])
        targets, confident = pseudo_labels(guess, self.threshold)
        sup = F.cross_entropy(logits_l.float(), y[labelled]) if len(xl) else logits.sum() * 0
        per_sample = F.cross_entropy(logits_s.float(), targets, reduction="none")
        unsup = (per_sample * confident.float()).mean() if len(xu) else logits.sum() * 0
        loss = sup + self.unlabeled_weight * unsup
        logs = {"loss": loss.detach(), "sup": sup.detach(), "unsup": unsup.detach(), "mask": confident.float().mean()}
        if len(xl):
            logs["acc"] = (logits_l.argmax(1) == y[labelled]).float().mean()
        return loss, logs

    @torch.no_grad()
    def after_step(self, progress: float) -> None:
        if not self.ema:
            return
        for mine, theirs in ((self.encoder, self.teacher_encoder), (self.head, self.teacher_head)):
            for p, t in zip(mine.parameters(), theirs.parameters(), strict=True):
                t.lerp_(p.detach(), 1 - self.ema)
            for b, t in zip(mine.buffers(), theirs.buffers(), strict=True):
                t.copy_(b)
