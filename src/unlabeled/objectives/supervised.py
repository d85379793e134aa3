"""Supervised fine-tuning: an encoder with a linear head trained with cross-entropy on labels.

What ``finetune`` trains (full fine-tuning of a pretrained encoder, or training from scratch
as the supervised baseline), and the classifier that ``forget`` removes data from. Views get
the modality's light (geometric) augmentation.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from unlabeled.objectives.base import Objective


class Classifier(nn.Module):
    """``encoder.embed`` followed by a linear head: ``forward(x) -> logits``."""

    def __init__(self, encoder: nn.Module, classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(encoder.dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.embed(x))


class ShardEnsemble(nn.Module):
    """SISA's aggregate of shard classifiers: the log of their mean class probabilities (so
    ``softmax`` of the output is the averaged prediction)."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([m(x).float().softmax(1) for m in self.members]).mean(0)
        return probs.clamp_min(1e-12).log()


class Supervised(Objective):
    name = "supervised"
    uses_labels = True

    def __init__(self, encoder, modality, classes: int, label_smoothing: float = 0.0, augment: bool = True) -> None:
        super().__init__(encoder, modality)
        if classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {classes}")
        self.classes, self.label_smoothing, self.use_augment = int(classes), float(label_smoothing), bool(augment)
        self.head = nn.Linear(encoder.dim, self.classes)

    def hparams(self) -> dict[str, Any]:
        return {"classes": self.classes, "label_smoothing": self.label_smoothing, "augment": self.use_augment}

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of already normalised inputs."""
        return self.head(self.encoder.embed(x))

    def views(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):
            return mod.normalize(mod.augment(x, generator, light=True) if self.use_augment else x)

    def loss(self, x: torch.Tensor, generator: torch.Generator, y: torch.Tensor):
        logits = self.logits(self.views(x, generator))
        loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
        acc = (logits.argmax(1) == y).float().mean()
        return loss, {"loss": loss.detach(), "acc": acc}
