"""Approximate unlearning methods, each an Objective that the one Trainer runs, starting from
the trained classifier's weights. The trainer's own stream is the forget set (``ga``,
``npo``) or the retain set (``finetune``, ``scrub``); an objective that needs the other set
draws its batches itself from a :class:`Stream`, with the step's generator, so a run is
reproducible.

- ``finetune``: cross-entropy on the retain set only, a few epochs (the "FT" baseline of
  Warnecke et al. 2023 and SalUn's tables): the forget set is forgotten only by catastrophic
  forgetting.
- ``ga``: gradient ascent on the forget set's cross-entropy (Thudi et al. 2022, "Unrolling
  SGD"); unbounded, so it collapses if run long: few steps, small rate.
- ``npo``: Negative Preference Optimization, Zhang, Lin, Bai, Mei 2024, "Negative Preference
  Optimization: From Catastrophic Collapse to Effective Unlearning": the bounded loss
  ``-(2/β) log σ(-β (log p_θ(y|x) - log p_ref(y|x)))`` on the forget set, plus cross-entropy on
  retain batches (NPO+RT).
- ``scrub``: Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine
  Unlearning" (NeurIPS): a student starting from the original (the teacher) alternates max
  steps (move away from the teacher on forget batches) and min steps (stay close to the
  teacher and fit the labels on retain batches); max steps only in the first half.
- ``salun``: Fan, Liu, Zhang, Wei, Wong, Liu 2024, "SalUn: Empowering Machine Unlearning via
  Gradient-based Weight Saliency in Both Image Classification and Generation" (ICLR): the
  forget set relabelled at random (another class per sample) and trained on together with
  the retain set — each step one batch of retain samples and a share of forget samples in
  proportion to the two sets' sizes, as training on their union does — with only the salient
  half of the weights updated, those where the forget loss's gradient is largest, so the rest
  of the model, which the forget set barely shaped, is left as it was.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.data.collection import Collection
from unlabeled.objectives.base import Objective


class Stream:
    """Random labelled batches from ``positions`` of a collection, drawn with a generator."""

    def __init__(self, collection: Collection, positions: np.ndarray, batch_size: int) -> None:
        self.collection, self.positions = collection, np.asarray(positions)
        self.batch_size = min(batch_size, len(self.positions))

    def draw(self, modality: Any, generator: torch.Generator, device: torch.device) -> tuple[torch.Tensor, ...]:
        pick = torch.randint(len(self.positions), (self.batch_size,), generator=generator, device=generator.device)
        pos = np.sort(self.positions[pick.cpu().numpy()])
        x = modality.prepare(self.collection.get(pos), device)
        if self.collection.labels is None:  # an unlabelled collection (encoder unlearning)
            return x, torch.zeros(len(pos), dtype=torch.long, device=device)
        return x, torch.from_numpy(self.collection.labels[pos]).to(device)


def npo_loss(logp: torch.Tensor, logp_ref: torch.Tensor, beta: float) -> torch.Tensor:
    """NPO (Zhang et al. 2024, eq. 3): ``(2/β) E[log(1 + (p_θ/p_ref)^β)]`` over the forget set."""
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - logp_ref)).mean()


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per batch, as SCRUB's distance."""
    return F.kl_div(
        F.log_softmax(student_logits.float(), 1),
        F.log_softmax(teacher_logits.float(), 1),
        log_target=True,
        reduction="batchmean",
    )


class Unlearner(Objective):
    """Shared parts: the classifier's encoder and head (so its weights load as they are), the
    light view of a batch, and a frozen copy of the original classifier where needed."""

    uses_labels = True
    needs_original = False

    def __init__(self, encoder: nn.Module, modality: Any, classes: int, other: Stream | None = None) -> None:
        super().__init__(encoder, modality)
        self.head = nn.Linear(encoder.dim, classes)
        self.other = other
        self.original: nn.ModuleDict | None = None
        self.use_augment = True  # as the classifier was trained (``finetune --no-augment``)

    def prepare(self, collection: Collection, forget: np.ndarray, retain: np.ndarray, device: torch.device) -> None:
        """Anything a method computes from the forget and retain sets before its first step."""

    def keep_original(self) -> None:
        """Freeze a copy of the current (original) weights as teacher / reference."""
        self.original = nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "head": copy.deepcopy(self.head)})
        self.original.requires_grad_(False).eval()

    def logits(self, x: torch.Tensor, generator: torch.Generator, original: bool = False) -> torch.Tensor:
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):
            v = mod.normalize(mod.augment(x, generator, light=True) if self.use_augment else x)
        if original:
            assert self.original is not None
            with torch.no_grad():
                return self.original["head"](self.original["encoder"].embed(v))
        return self.head(self.encoder.embed(v))

    def paired_logits(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(model, original) logits of the same augmented view of ``x``."""
        state = generator.get_state()
        own = self.logits(x, generator)
        generator.set_state(state)
        return own, self.logits(x, generator, original=True)


class FinetuneRetain(Unlearner):
    name = "finetune"

    def loss(self, x, generator, y):
        loss = F.cross_entropy(self.logits(x, generator).float(), y)
        return loss, {"loss": loss.detach()}


class GradientAscent(Unlearner):
    name = "ga"

    def loss(self, x, generator, y):
        ce = F.cross_entropy(self.logits(x, generator).float(), y)
        return -ce, {"loss": -ce.detach(), "forget_ce": ce.detach()}


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
        logp = logits.float().log_softmax(1).gather(1, y[:, None])[:, 0]
        logp_ref = ref.float().log_softmax(1).gather(1, y[:, None])[:, 0]
        forget = npo_loss(logp, logp_ref, self.beta)
        loss, logs = forget, {"npo": forget.detach()}
        if self.other is not None and self.retain_weight:
            xr, yr = self.other.draw(self.modality, generator, x.device)
            retain = F.cross_entropy(self.logits(xr, generator).float(), yr)
            loss = loss + self.retain_weight * retain
            logs["retain_ce"] = retain.detach()
        logs["loss"] = loss.detach()
        return loss, logs


class SCRUB(Unlearner):
    name = "scrub"
    needs_original = True

    def __init__(self, encoder, modality, classes, other=None, alpha: float = 1.0, max_fraction: float = 0.5) -> None:
        super().__init__(encoder, modality, classes, other)
        self.alpha, self.max_fraction = alpha, max_fraction
        self.register_buffer("progress", torch.zeros(()))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def hparams(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "max_fraction": self.max_fraction}

    def loss(self, x, generator, y):
        max_step = self.other is not None and int(self.steps) % 2 == 0 and float(self.progress) < self.max_fraction
        if max_step:  # away from the teacher on the forget set
            xf, _ = self.other.draw(self.modality, generator, x.device)
            loss = -kl_to_teacher(*self.paired_logits(xf, generator))
            return loss, {"loss": loss.detach(), "forget_kl": -loss.detach()}
        student, teacher = self.paired_logits(x, generator)
        kl = kl_to_teacher(student, teacher)
        ce = F.cross_entropy(student.float(), y)
        loss = kl + self.alpha * ce
        return loss, {"loss": loss.detach(), "retain_kl": kl.detach(), "retain_ce": ce.detach()}

    def after_step(self, progress: float) -> None:
        self.steps += 1
        self.progress.fill_(progress)


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
        flat = torch.cat([a.flatten() for a in grads])
        k = max(1, int(round(self.sparsity * flat.numel())))
        threshold = flat.kthvalue(flat.numel() - k + 1).values
        self.masks = [(a >= threshold).to(a.dtype) for a in grads]

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
        shift = torch.randint(1, self.classes, yf.shape, generator=generator, device=generator.device)
        ce = F.cross_entropy(
            self.logits(torch.cat([x, xf]), generator).float(),
            torch.cat([y, (yf + shift.to(yf.device)) % self.classes]),
            reduction="none",
        )
        loss, ce = ce.mean(), ce.detach()
        return loss, {"loss": loss.detach(), "retain_ce": ce[: len(y)].mean(), "forget_rl": ce[len(y) :].mean()}


# method -> (objective, which set the trainer streams, default epochs, default lr). Epochs over
# the forget set are absolute; over the retain set they are a fraction of the original
# training's epochs, so that a method costs about a tenth of retraining or less.
APPROXIMATE = {
    "finetune": (FinetuneRetain, "retain", 0.1, 1e-3),
    "ga": (GradientAscent, "forget", 1.0, 5e-5),
    "npo": (NPO, "forget", 2.0, 2e-4),
    "scrub": (SCRUB, "retain", 0.05, 5e-4),
    "salun": (SalUn, "retain", 0.1, 2e-3),
}
