"""Self-distillation for further pretraining: a regulariser any objective can take.

Lee, Kang, Lee, Hwang, Kawaguchi 2023, "Self-Distillation for Further Pre-training of
Transformers" (ICLR): when a pretrained model is pretrained further on a small target domain,
it overfits it; they first pretrain a copy further (the teacher), then pretrain the original
again on the same data while pulling its representations toward the teacher's (mean squared
error of the final hidden states), which generalised better downstream.

Here the teacher is a run (``--option teacher=RUN``: the paper's recipe, a run pretrained
further on this data from the same ``--init``), or by default the ``--init`` run itself, which
anchors the model to the representations it started from. ``--option self_distil=W`` is the
weight of the penalty beside the objective's own loss. The teacher is frozen and kept outside
the objective's state (it is not saved with the run; a resumed run loads it again from its
path, checked against the weights' hash recorded at the start). The student's pass for the
penalty runs without dropout, so its value depends on nothing but the weights and the batch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.modalities.text import PAD

OPTIONS = ("self_distil", "teacher", "teacher_weights")


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The objective's own settings, and the self-distillation ones (:data:`OPTIONS`)."""
    own = {k: v for k, v in options.items() if k not in OPTIONS}
    return own, {k: v for k, v in options.items() if k in OPTIONS}


class Teacher:
    """A frozen encoder and the penalty's weight, set as an objective's ``self_distil``, where
    :meth:`Objective.forward` adds ``weight * penalty``. Not an ``nn.Module``: its weights stay
    out of the run's state dict and checkpoints."""

    def __init__(self, encoder: nn.Module, weight: float) -> None:
        if weight <= 0:
            raise ValueError(f"self_distil must be a positive weight, got {weight}")
        self.encoder, self.weight = encoder.eval().requires_grad_(False), float(weight)

    def penalty(self, student: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Mean squared difference of the student's and the teacher's token outputs on ``x``
        (real tokens only, for text), the student without dropout."""
        self.encoder.to(x.device)
        with torch.no_grad():
            target = self.encoder(x)
        was = student.training
        student.eval()  # no dropout: the penalty draws nothing at random
        try:
            out = student(x)
        finally:
            student.train(was)
        diff = F.mse_loss(out.float(), target.float(), reduction="none").mean(-1)
        if getattr(student, "vocab", 0):
            real = (x != PAD).to(diff.dtype)
            return (diff * real).sum() / real.sum().clamp(min=1)
        return diff.mean()
