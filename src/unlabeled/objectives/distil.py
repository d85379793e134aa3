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

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective


def teacher_probs(teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``P_T(y | x; tau)``: the teacher's class distribution at temperature ``tau``."""
    return (teacher_logits.float() / temperature).softmax(-1)


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of the student's tempered distribution against target distributions
    (SimCLRv2, eq. 3), averaged over the batch. No ``tau**2`` factor: SimCLRv2 distils with
    this loss alone (tau = 1 in most of its runs), not beside a label loss of another scale."""
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return -(targets.float() * log_p).sum(-1).mean()


class Distil(Objective):
    """A student (encoder + linear head) trained on the modality's light (geometric) views of
    each sample against its target distribution. The exported weights are a classifier's
    (``encoder.*``, ``head.*``), so the student is a classifier run like any other."""

    name = "distil"
    uses_labels = True

    def __init__(
        self, encoder: nn.Module, modality: Any, classes: int, temperature: float = 1.0, augment: bool = True
    ) -> None:
        super().__init__(encoder, modality)
        if classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.classes, self.temperature, self.use_augment = int(classes), float(temperature), bool(augment)
        self.head = nn.Linear(encoder.dim, self.classes)

    def hparams(self) -> dict[str, Any]:
        return {"classes": self.classes, "temperature": self.temperature, "augment": self.use_augment}

    def loss(self, x: torch.Tensor, generator: torch.Generator, targets: torch.Tensor):
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):  # augment in fp32, as Supervised
            x = mod.normalize(mod.augment(x, generator, light=True) if self.use_augment else x)
        logits = self.head(self.encoder.embed(x))
        loss = distillation_loss(logits, targets, self.temperature)
        agree = (logits.argmax(1) == targets.argmax(1)).float().mean()
        return loss, {"loss": loss.detach(), "agree": agree}
