"""Distillation: a student classifier trained on unlabeled samples to match a teacher's
tempered class distribution (Chen, Kornblith, Swersky, Norouzi, Hinton 2020, "Big
Self-Supervised Models are Strong Semi-Supervised Learners", SimCLRv2, eq. 3; Hinton,
Vinyals, Dean 2015, "Distilling the Knowledge in a Neural Network").

    loss = -sum_y P_T(y | x; tau) log P_S(y | x; tau)

The teacher's distributions come in as the batch's targets (``y``: one row of class
probabilities per sample), computed once before training by ``unlabeled distil``: on a CPU a
teacher forward pass per step would cost as much as the student's. Labelled samples can carry
a mixture of their one-hot label and the teacher's distribution; the cross-entropy is linear
in the target, so that is SimCLRv2's weighted sum of the label loss and the distillation loss.

    targets = teacher_probs(teacher_logits, temperature=1.0)
    loss = distillation_loss(student_logits, targets, temperature=1.0)
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective
from unlabeled.train import distributed as dist

SELECTIONS = ("all", "llkd")


def teacher_probs(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``P_T(y | x; tau)``: the teacher's class distribution at temperature ``tau``."""
    return (teacher_logits.float() / temperature).softmax(-1)


def distillation_loss(
    student_logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of the student's tempered distribution against target distributions
    (SimCLRv2, eq. 3), averaged over the batch (or its ``weights``-weighted mean). No
    ``tau**2`` factor: SimCLRv2 distils with this loss alone (tau = 1 in most of its runs), not
    beside a label loss of another scale."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    per_sample = -(targets.float() * log_p).sum(-1)
    if weights is None:
        return per_sample.mean()
    # the global batch's weighted mean under torchrun: DDP averages the processes' gradients, so
    # each divides by the mean of their weight sums (its own sum weighed a rank of few kept
    # samples as much as one of many)
    total = dist.summed(weights.sum()) / dist.world_size()
    return (per_sample * weights).sum() / total.clamp_min(1e-12)


class LLKDSelection(nn.Module):
    """Which unlabelled samples of a batch a student learns from, and how much, after LLKD (Li
    et al. 2024, "Learning with Less: Knowledge Distillation from Large Language Models via
    Unlabeled Data"): samples on which the teacher is confident (its pseudo-label is likely
    right) and the student uncertain (it still has something to learn), each against a
    threshold that moves with training.

    Our rendition of its rule, per batch: the teacher's confidence ``c`` is its top class
    probability; the student's uncertainty ``u`` the entropy of its prediction over
    ``log(classes)``. The teacher's threshold is a moving average (``momentum``) of the
    batches' mean ``c`` (global) scaled per teacher class by that class's moving average over
    the largest one (FreeMatch's self-adaptive form, Wang et al. 2023); both start at the
    first batch's values. The student's is the batch's own mean ``u``: the student changes
    fast, and a moving average of its falling uncertainty left every sample below it within a
    few steps. A sample is kept where ``c`` reaches its class's threshold and ``u`` the
    student's; kept samples weigh ``c * u``. The averages are buffers, so a resumed run selects
    exactly as an uninterrupted one."""

    def __init__(self, classes: int, momentum: float = 0.99) -> None:
        super().__init__()
        self.momentum = float(momentum)
        self.register_buffer("confidence", torch.zeros(()))
        self.register_buffer("class_confidence", torch.zeros(classes))
        self.register_buffer("batches", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def forward(self, targets: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
        """The weight of each sample of the batch (0 for those left out)."""
        probs = targets.float()
        c, k = probs.max(-1)
        p = student_logits.detach().float().softmax(-1)
        u = -(p * p.clamp_min(1e-12).log()).sum(-1) / math.log(p.shape[-1])
        m = self.momentum if self.batches > 0 else 0.0  # the first batch sets the averages
        seen = torch.zeros_like(self.class_confidence).index_add_(0, k, c)
        counts = torch.zeros_like(self.class_confidence).index_add_(0, k, torch.ones_like(c))
        # the global batch's statistics under torchrun (each process's own moved rank 0's copy apart)
        n = len(seen)
        total = dist.summed(torch.cat([c.sum()[None], u.sum()[None], c.new_tensor([len(c)]), seen, counts]))
        c_mean, u_mean = total[0] / total[2].clamp_min(1), total[1] / total[2].clamp_min(1)
        seen, counts = total[3 : 3 + n], total[3 + n :]
        self.confidence.mul_(m).add_((1 - m) * c_mean)
        present = counts > 0
        if self.batches == 0:
            self.class_confidence.fill_(float(c_mean))
        self.class_confidence[present] = m * self.class_confidence[present] + (1 - m) * seen[present] / counts[present]
        self.batches += 1
        threshold = self.confidence * self.class_confidence / self.class_confidence.max().clamp_min(1e-12)
        keep = (c >= threshold[k]) & (u >= u_mean)
        return keep.float() * c * u


class Distil(Objective):
    """A student (encoder + linear head) trained on the modality's light (geometric) views of
    each sample against its target distribution. The exported weights are a classifier's
    (``encoder.*``, ``head.*``), so the student is a classifier run like any other."""

    name = "distil"
    uses_labels = True

    def __init__(
        self,
        encoder: nn.Module,
        modality: Any,
        classes: int,
        temperature: float = 1.0,
        augment: bool = True,
        select: str = "all",
    ) -> None:
        super().__init__(encoder, modality)
        if classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        if select not in SELECTIONS:
            raise ValueError(f"select must be {' or '.join(SELECTIONS)}, got {select!r}")
        self.classes, self.temperature, self.use_augment = int(classes), float(temperature), bool(augment)
        self.select = select
        self.head = nn.Linear(encoder.dim, self.classes)
        if select == "llkd":
            self.selection = LLKDSelection(self.classes)

    def hparams(self) -> dict[str, Any]:
        out = {"classes": self.classes, "temperature": self.temperature, "augment": self.use_augment}
        return out | ({"select": self.select} if self.select != "all" else {})  # older runs' options as they were

    def loss(self, x: torch.Tensor, generator: torch.Generator, targets: torch.Tensor):
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):  # augment in fp32, as Supervised
            x = mod.normalize(mod.augment(x, generator, light=True) if self.use_augment else x)
        logits = self.head(self.encoder.embed(x))
        weights = self.selection(targets, logits) if self.select == "llkd" else None
        loss = distillation_loss(logits, targets, self.temperature, weights)
        agree = (logits.argmax(1) == targets.argmax(1)).float().mean()
        logs = {"loss": loss.detach(), "agree": agree}
        return loss, logs | ({"kept": (weights > 0).float().mean()} if weights is not None else {})
