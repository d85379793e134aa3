"""``ga``: gradient ascent on the forget set's cross-entropy (Thudi et al. 2022, "Unrolling
SGD"); unbounded, so it collapses if run long: few steps, small rate."""

from __future__ import annotations

import torch.nn.functional as F

from unlabeled.forget.methods.base import Approximate
from unlabeled.forget.unlearner import Unlearner


class GradientAscent(Unlearner):
    name = "ga"

    def loss(self, x, generator, y):
        ce = F.cross_entropy(self.logits(x, generator).float(), y)
        return -ce, {"loss": -ce.detach(), "forget_ce": ce.detach()}


class GAMethod(Approximate):
    name = "ga"
    objective = GradientAscent
    stream = "forget"
    epochs = 1.0
    lr = 5e-5
