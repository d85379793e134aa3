"""``scrub``: Kurmanji, Triantafillou, Hayes, Triantafillou 2023, "Towards Unbounded Machine
Unlearning" (NeurIPS): a student starting from the original (the teacher) alternates max
steps (move away from the teacher on forget batches) and min steps (stay close to the
teacher and fit the labels on retain batches); max steps only in the first half."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from unlabeled.forget.methods.base import Approximate
from unlabeled.forget.unlearner import Unlearner


def kl_to_teacher(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) per batch, as SCRUB's distance."""
    return F.kl_div(
        F.log_softmax(student_logits.float(), 1),
        F.log_softmax(teacher_logits.float(), 1),
        log_target=True,
        reduction="batchmean",
    )


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


class SCRUBMethod(Approximate):
    name = "scrub"
    objective = SCRUB
    stream = "retain"
    settings = ("alpha", "max_fraction")
    limits = {"alpha": (lambda v: v >= 0, "0 or more"), "max_fraction": (lambda v: 0 < v <= 1, "a share in (0, 1]")}
    epochs = 0.05
    lr = 5e-4
