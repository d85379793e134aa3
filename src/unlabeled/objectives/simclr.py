"""SimCLR: contrastive learning of two augmented views with the NT-Xent loss.

Chen, Kornblith, Norouzi, Hinton 2020, "A Simple Framework for Contrastive Learning of
Visual Representations" (ICML). Each sample is augmented twice; a projection head maps the
encoder's representation to a space where the two views of one sample must be closer to each
other than to the other 2(B-1) views of the batch.

    obj = SimCLR(encoder, modality, temperature=0.5)
    loss, logs = obj.loss(x, generator)
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from unlabeled.models.heads import projection_head
from unlabeled.objectives.base import Objective
from unlabeled.train import distributed as dist

Full = tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]


def _candidates(z1: torch.Tensor, z2: torch.Tensor, gather: bool) -> Full:
    """The two full views' unit vectors, the global batch's full views every anchor is
    contrasted with (every rank's first views, then their second views), and where this
    rank's samples start among each half; made once a step (one all-gather under
    ``torchrun``) for both losses."""
    z1, z2 = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    all1, all2 = (dist.gather(z1), dist.gather(z2)) if gather else (z1, z2)
    return z1, z2, torch.cat([all1, all2]), dist.rank() * z1.shape[0] if gather else 0


def nt_xent(
    z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised-temperature cross-entropy (SimCLR eq. 1), averaged over the 2B anchors.

    Under data parallelism (``gather``), every rank's views join the candidates, so each
    anchor is contrasted with the 2·B·world - 2 views of the global batch, as in SimCLR's
    cross-replica setup. Returns the loss and the fraction of anchors whose most similar
    other view is their positive (a cheap health signal for the run)."""
    return _pairs_loss(_candidates(z1, z2, gather), temperature)


def _pairs_loss(full: Full, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    z1, z2, candidates, offset = full
    b, n = z1.shape[0], candidates.shape[0] // 2
    logits = torch.cat([z1, z2]) @ candidates.T / temperature
    local = torch.arange(b, device=z1.device) + offset
    own = torch.cat([local, local + n])  # where each anchor sits among the candidates
    logits[torch.arange(2 * b, device=z1.device), own] = float("-inf")  # a view is never its own negative
    target = torch.cat([local + n, local])
    loss = F.cross_entropy(logits, target)
    acc = (logits.argmax(dim=1) == target).float().mean()
    return loss, acc


def local_xent(
    zl: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = True
) -> torch.Tensor:
    """Multi-crop's loss for the small views ``zl`` (L·B rows, view-major): each is an anchor
    whose positives are its sample's two full views among the global batch's 2·B full views,
    the cross-entropy against each averaged (SwAV's small crops are compared with the large
    ones only, Caron et al. 2020, section 3.2)."""
    return _local_loss(zl, _candidates(z1, z2, gather), temperature)


def _local_loss(zl: torch.Tensor, full: Full, temperature: float) -> torch.Tensor:
    z1, _, candidates, offset = full
    b = z1.shape[0]
    logits = F.normalize(zl.float(), dim=1) @ candidates.T / temperature
    own = (torch.arange(b, device=zl.device) + offset).repeat(zl.shape[0] // b)
    return 0.5 * (F.cross_entropy(logits, own) + F.cross_entropy(logits, own + candidates.shape[0] // 2))


class SimCLR(Objective):
    name = "simclr"

    def __init__(
        self, encoder, modality, temperature: float = 0.5, proj_hidden: int = 512, proj_dim: int = 128
    ) -> None:
        super().__init__(encoder, modality)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature
        self.proj_hidden, self.proj_dim = proj_hidden, proj_dim
        self.head = projection_head(encoder.dim, proj_hidden, proj_dim)

    def hparams(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "proj_hidden": self.proj_hidden, "proj_dim": self.proj_dim}

    def loss(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
        mod = self.modality
        with torch.autocast(x.device.type, enabled=False):  # augment in fp32, train in bf16
            views = torch.cat([mod.normalize(mod.augment(x, generator)) for _ in range(2)])
            small = [mod.normalize(v) for v in mod.local_views(x, generator)]
        z = self.head(self.encoder.embed(views))
        full = _candidates(*z.chunk(2), gather=True)
        loss, acc = _pairs_loss(full, self.temperature)
        logs = {"pos_acc": acc}
        if small:  # every anchor weighs the same: 2 full views and len(small) small ones a sample
            local = _local_loss(self.head(self.encoder.embed(torch.cat(small))), full, self.temperature)
            loss = (2 * loss + len(small) * local) / (2 + len(small))
            logs["local_loss"] = local.detach()
        return loss, {"loss": loss.detach(), **logs}
