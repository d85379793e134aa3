"""``finetune``: cross-entropy on the retain set only, a few epochs (the "FT" baseline of
Warnecke et al. 2023 and SalUn's tables): the forget set is forgotten only by catastrophic
forgetting."""

from __future__ import annotations

import torch.nn.functional as F

from unlabeled.forget.methods.base import Approximate
from unlabeled.forget.unlearner import Unlearner


class FinetuneRetain(Unlearner):
    name = "finetune"

    def loss(self, x, generator, y):
        loss = F.cross_entropy(self.logits(x, generator).float(), y)
        return loss, {"loss": loss.detach()}


class FinetuneMethod(Approximate):
    name = "finetune"
    objective = FinetuneRetain
    stream = "retain"
    epochs = 0.1
    lr = 1e-3
